"""Where an initial request goes: the routing guide's pipeline and its site hooks, sans-I/O.

* :mod:`.pipeline` -- the steps, each answering a response, targets, or "continue";
* :mod:`.hooks` -- the site hook points (the siteconfig loader is coming);
* :mod:`.lcr` -- least-cost routing: the gateways and numbers to try for a PSTN number;
* :mod:`.quickdial` -- short numbers completed with the caller's quick dial prefix;
* :mod:`.emergency` -- emergency numbers mapped by the caller's region;
* :mod:`.diversion` -- call diversion decisions and the RFC 5806 Diversion header.

Today the steps cover local users (aliases, accounts, registered contacts) and answer 404/403
for everything else; ENUM (RFC 6116), quick dial, emergency numbers, call diversion,
PSTN/LCR, trusted peers and RFC 3263 peers are coming (the routing issue).  May import
:mod:`sipproxy.sip`, :mod:`sipproxy.directory.account` and
:mod:`sipproxy.directory.routingdata` (plain values); never gevent, socket or
SQLAlchemy: data comes through the directory, location and edge objects handed in.
"""
