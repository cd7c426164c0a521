"""The stateful proxy (RFC 3261 section 16), sans-I/O.

* :mod:`.proxy` -- the request side: CANCEL (16.10), validation and loops (16.3), route
  pre-processing (16.4), in-dialog requests, authentication of initial requests, forwarding
  and forking (16.6), ACK for 2xx (16.11);
* :mod:`.responses` -- the response context (16.7): best response, Timer C, CANCEL of the
  other branches, the dialog record when a call is answered;
* :mod:`.context` -- the response context's objects (:class:`Context`, :class:`Branch`);
* :mod:`.validation` -- request validation (16.3) and the loop mark (16.6 step 8);
* :mod:`.nat` -- the one NAT test (RFC 3581) and the NATed-Contact fix;
* :mod:`.interface` -- :class:`Edge`, the one interface to the I/O.

May import :mod:`sipproxy.sip`, :mod:`sipproxy.routing`, :mod:`sipproxy.auth`,
:mod:`sipproxy.dialog`'s pure modules and :mod:`sipproxy.directory.account`; never gevent,
socket or SQLAlchemy (the stores are handed in).
"""
