"""The SIP proxy, registrar and (coming) presence agent of the platform: ``python -m sipproxy``.

Sub-packages, one per concern (docs/sipproxy.md "Code map" walks an INVITE through them):

* :mod:`sipproxy.sip` -- the SIP message layer and transaction table (standard library only);
* :mod:`sipproxy.proxy` -- RFC 3261 section 16: validation, the proxy context, forwarding,
  response handling, NAT tests; reaches the I/O through :class:`sipproxy.proxy.interface.Edge`;
* :mod:`sipproxy.routing` -- the routing guide's pipeline of steps and the site hooks;
* :mod:`sipproxy.auth` -- authentication (digest against the accounts);
* :mod:`sipproxy.registrar` -- the registrar and the location service (cache + SQL);
* :mod:`sipproxy.dialog` -- established calls: their state, store and call control;
* :mod:`sipproxy.directory` -- the read side of provisioning (domains, accounts, aliases);
* :mod:`sipproxy.media` -- the client of the media relays;
* :mod:`sipproxy.runtime` -- the gevent I/O: transports, lanes, timers, the edge, overload;
* :mod:`sipproxy.app` -- the wiring of one proxy process and ``main``.

``sip``, ``proxy``, ``routing`` and ``auth`` import no gevent, socket or SQLAlchemy; no
package imports another service's package (only ``ngnpro.models``); no import cycles.
``.importlinter`` holds these rules; ``scripts/test`` checks them before the tests.
"""
