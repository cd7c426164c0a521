"""The registrar and the location service (RFC 3261 section 10; RFC 3327 Path, RFC 5626).

* :mod:`.registrar` -- REGISTER in, the response out (10.3), sans-I/O;
* :mod:`.binding` -- a binding and the refusals (sans-I/O);
* :mod:`.location` -- bindings in the shared ``location`` table, write-through or write-back;
* :mod:`.locationsql` -- the location table's statements, compiled once per dialect;
* :mod:`.cache` -- the short-lived look-up cache shared by the worker processes.

May import :mod:`sipproxy.sip`, :mod:`sipproxy.auth`, :mod:`sipproxy.directory`,
``ngnpro.models`` and SQLAlchemy.
"""
