"""Calls from the INVITE to the end (RFC 3261 section 12): their state, their store, and call control.

* :mod:`.state` -- what the proxy knows of a call when it rings and when it is answered,
  and when an early row is stale (sans-I/O);
* :mod:`.control` -- the proxy ending a call itself: BYE both ways (media timeout,
  prepaid cut-off, ...), through the proxy's edge;
* :mod:`.store` -- the ``dialogs`` table (SQL, written in batches), with its statements
  (:mod:`.sql`), how a batch becomes few statements (:mod:`.batching`, sans-I/O) and the
  call limit's tally of writes not applied yet (:mod:`.pending`, sans-I/O);
* :mod:`.prepaid`, :mod:`.cutoff`, :mod:`.sessiontimer` -- prepaid calls, their time left,
  RFC 4028 session timers.

``state``, ``batching``, ``pending`` and ``control`` import no I/O; ``store``, ``sql`` and
``prepaid`` add SQLAlchemy and ``ngnpro.models``.
"""
