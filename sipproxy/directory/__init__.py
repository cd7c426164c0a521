"""The proxy's read side of provisioning: local domains, accounts, aliases, routing data.

* :mod:`.account` -- :class:`Account`, a subscriber as the proxy sees it (sans-I/O);
* :mod:`.store` -- the cached SQL reads, refreshed by ngnpro's change feed within 1 s;
* :mod:`.routingdata` -- the routing data as plain immutable values (sans-I/O): trusted
  peers, the LCR table (routes, carriers, gateways, rules), diversions, emergency mappings;
* :mod:`.routing` -- the cached SQL reads of those, refreshed like :mod:`.store`.

May import ``ngnpro.models`` and SQLAlchemy (``store`` and ``routing`` only).
"""
