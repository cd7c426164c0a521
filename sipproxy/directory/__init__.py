"""The proxy's read side of provisioning: local domains, accounts, aliases.

* :mod:`.account` -- :class:`Account`, a subscriber as the proxy sees it (sans-I/O);
* :mod:`.store` -- the cached SQL reads, refreshed by ngnpro's change feed within 1 s.

May import ``ngnpro.models`` and SQLAlchemy (``store`` only).
"""
