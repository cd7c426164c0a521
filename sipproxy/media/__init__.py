"""The proxy's client of the media relays (``python -m mediaproxy``, DESIGN.md's control protocol).

* :mod:`.relay` -- the control links (gevent sockets), spreading calls over several relays
  and surviving one going away, and :class:`ProxyMedia`, the SDP rewriting at the proxy's
  seam (offer, answer, late offer, release) with the ``media_relay`` policy.

May import :mod:`sipproxy.sip`, :mod:`sipproxy.proxy.nat` and gevent; never mediaproxy's
package (the relay is reached over its control port only).
"""
