"""Where an initial request goes: the routing guide's pipeline and its site hooks, sans-I/O.

* :mod:`.pipeline` -- the steps, each answering a response, targets, or "continue";
* :mod:`.hooks` -- the site hook points and the siteconfig loader; :mod:`.hookapi` what a
  hook may do;
* :mod:`.lcr` -- least-cost routing: the gateways and numbers to try for a PSTN number;
* :mod:`.quickdial` -- short numbers completed with the caller's quick dial prefix;
* :mod:`.emergency` -- emergency numbers mapped by the caller's region;
* :mod:`.diversion` -- call diversion decisions and the RFC 5806 Diversion header.
* :mod:`.numbers` -- dialled numbers to E.164 by the guide's settings (country_code, ...);
* :mod:`.enum` -- ENUM (RFC 6116): query domains, and SIP URIs from NAPTR answers;
* :mod:`.locate` -- RFC 3263 server location decisions, SRV ordering (RFC 2782);
* :mod:`.resolver` -- the DNS interfaces routing calls (``Resolver``, ``DnsLookup``),
  implemented by :mod:`sipproxy.runtime.dns`.

Today the steps cover local users (aliases, accounts, registered contacts) and answer 404/403
for everything else; ENUM (RFC 6116), quick dial, emergency numbers, call diversion,
PSTN/LCR, trusted peers and RFC 3263 peers are coming (the routing issue).  May import
:mod:`sipproxy.sip`, :mod:`sipproxy.directory.account` and
:mod:`sipproxy.directory.routingdata` (plain values); never gevent, socket or
SQLAlchemy: data comes through the directory, location and edge objects handed in.
"""
