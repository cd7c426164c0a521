"""A database that cannot answer: new requests get ``503 Service Unavailable`` + Retry-After.

While the shared database is away (a server restarting, a lost network, SQLite held by
another writer) the proxy cannot authenticate, look up or store bindings.  The honest answer
to a new REGISTER or a new call is then 503 with ``Retry-After`` (RFC 3261 21.5.4): the phone
tries again later or elsewhere; a 500 says the request itself broke something, and silence
makes the phone retransmit into the outage.  Calls in progress are not concerned: in-dialog
requests follow their Route set and need no database.

:class:`Unavailable` is shared by the registrar and the proxy's initial requests:

* ``failed(exc, request)`` -- a database error reached the request: answer 503.  The
  first one of an outage is logged (one warning); the others are counted.
* ``refuse(request)`` -- asked before the database is touched: for ``hold`` seconds after a
  failure every new request gets 503 at once without trying, so an outage costs one attempt
  per ``hold`` seconds (SQLite's busy wait blocks the whole worker while it lasts).
* ``succeeded()`` -- a request got through the database again: one info line with the
  outage's length and how many requests were refused.

``is_database_error(exc)`` tells the errors that mean "the database cannot answer now"
(SQLAlchemy's OperationalError, InterfaceError, a disconnect or a pool timeout, and the
drivers' own) from the others, which stay a 500 with a traceback: they are bugs.  It looks at
the class names and modules, so this package needs no SQLAlchemy import.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sipproxy.sip.ids import new_tag
from sipproxy.sip.parser import Request, Response, make_response

log = logging.getLogger("sipproxy.database")

__all__ = ["Unavailable", "is_database_error"]

_MODULES = ("sqlalchemy", "sqlite3", "psycopg", "psycopg2", "pymysql", "MySQLdb", "mariadb")
_NAMES = frozenset({"OperationalError", "InterfaceError", "DisconnectionError", "TimeoutError",
                    "InternalError"})


#: SQLite reports a schema or SQL mistake as OperationalError too: those are bugs (500)
_SQLITE_BUGS = ("no such table", "no such column", "syntax error", "has no column")


def is_database_error(exc: BaseException) -> bool:
    """``exc`` (or the error it wraps) says the database could not answer."""
    text = str(exc)
    if any(bug in text for bug in _SQLITE_BUGS):
        return False
    seen = 0
    while exc is not None and seen < 4:
        for cls in type(exc).__mro__:
            if cls.__name__ in _NAMES and cls.__module__.split(".")[0] in _MODULES:
                return True
        exc = exc.__cause__  # type: ignore[assignment]
        seen += 1
    return False


class Unavailable:
    """The outage state of one process (see the module docstring)."""

    def __init__(self, retry_after: int = 5, hold: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_after = retry_after
        self.hold = hold
        self._clock = clock
        self.down_since: float | None = None
        self._until = 0.0
        #: requests answered 503 in the current outage; outages since start
        self.refused = 0
        self.outages = 0

    def response(self, request: Request) -> Response:
        return make_response(request, 503, "Service Unavailable", to_tag=new_tag(),
                             headers=[("Retry-After", str(self.retry_after))])

    def refuse(self, request: Request) -> Response | None:
        """503 while a failure is fresh (within ``hold``); None: go ahead (also once per
        ``hold`` during an outage, to find out whether it is over)."""
        if self.down_since is None or self._clock() >= self._until:
            return None
        self.refused += 1
        return self.response(request)

    def failed(self, exc: BaseException, request: Request) -> Response:
        now = self._clock()
        self._until = now + self.hold
        self.refused += 1
        if self.down_since is None:
            self.down_since = now
            self.outages += 1
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            log.warning("database unavailable (%s: %s): new registrations and calls are answered "
                        "503 (Retry-After %d) until it answers again", type(exc).__name__, text,
                        self.retry_after)
        return self.response(request)

    def succeeded(self) -> None:
        if self.down_since is None:
            return
        log.warning("database answering again after %.1f s; %d new requests were answered 503",
                    self._clock() - self.down_since, self.refused)
        self.down_since = None
        self.refused = 0
