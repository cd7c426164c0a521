"""The SIP message layer (RFC 3261 sections 7, 8, 18-20, 25), sans-I/O, standard library only.

* :mod:`.grammar` -- tokens, quoted strings, parameters, :class:`ParseError` (25);
* :mod:`.uri` -- SIP/SIPS/tel URIs and name-addr values (19.1, 20.10; RFC 3966);
* :mod:`.headers` -- the header field list and the Via value (7.3, 20.42);
* :mod:`.messages` -- :class:`Request`, :class:`Response`, ``make_response`` (7, 8.2.6);
* :mod:`.parser` -- bytes to messages, eagerly checking what a proxy must (7, RFC 4475);
* :mod:`.framing` -- TCP/TLS stream framing by Content-Length (18.3; RFC 5626 keepalives);
* :mod:`.sdp` -- SDP as the media relay needs it (RFC 8866);
* :mod:`.digest` -- digest challenges and credentials (22; RFC 7616, RFC 8760);
* :mod:`.ids` -- tags and branches (19.3, 8.1.1.7);
* :mod:`.addressing` -- transport addresses, where responses go (18.2.2; RFC 3581);
* :mod:`.routeset` -- sending along a route set, strict routers (12.2.1.1, 16.6);
* :mod:`.transaction` -- the transaction state machines and layer (17; RFC 6026).

May import only the standard library and itself (no gevent, socket or SQLAlchemy), so it
can be tested, fuzzed and compiled without the rest.
"""
