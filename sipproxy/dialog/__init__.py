"""Established calls (RFC 3261 section 12): their state, their store, and call control.

* :mod:`.state` -- what the proxy knows of a call when it is answered (sans-I/O);
* :mod:`.control` -- the proxy ending a call itself: BYE both ways (media timeout today;
  prepaid cut-off is coming), through the proxy's edge;
* :mod:`.store` -- the ``dialogs`` table (SQL, written in batches).

``state`` and ``control`` import only :mod:`sipproxy.sip`; ``store`` adds SQLAlchemy and
``ngnpro.models``.
"""
