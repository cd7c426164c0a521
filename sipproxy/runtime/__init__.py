"""The gevent edge of the proxy: the only package doing the proxy's SIP network I/O.

* :mod:`.transport` -- UDP, TCP and TLS listeners and the connection table (RFC 3261 18);
* :mod:`.lanes` -- greenlet loops that run their work in line, and the timer wheel;
* :mod:`.edge` -- :class:`Core`: parse, stamp the Via (18.2.1, RFC 3581), run the
  transaction layer's actions, hand messages to the proxy; implements
  :class:`sipproxy.proxy.interface.Edge`;
* :mod:`.overload` -- overload control (RFC 6357): shed new work while behind;
* :mod:`.dns` -- ENUM and RFC 3263 look-ups on dnspython, cached for their TTL; implements
  :class:`sipproxy.routing.resolver.Resolver`.

May import anything in sipproxy except :mod:`sipproxy.app`.
"""
