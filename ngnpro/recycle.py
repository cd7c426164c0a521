"""When a worker of the ngnpro HTTP server retires, to be replaced by a fresh fork.

lxml interns every element and attribute name it parses in one libxml2 dictionary per
thread, which never shrinks; a client sending names never seen before makes a worker's
memory grow for good and, once the dictionary is full, every request with a new name fails
(docs/reliability.md, finding 5).  Nothing inside the process can give that memory back,
so the process goes: the worker retires (:func:`ngnpro.server._retire`) when

* its resident memory passes ``[ngnpro] worker_max_rss`` MB, read from ``/proc/self/statm``
  every :data:`RSS_CHECK_EVERY` requests (10 µs a read here: 2.5 µs a request);
* it has answered ``[ngnpro] worker_max_requests`` requests (0: never);
* a request failed because libxml2 ran out of memory (:func:`note_failure`, called where
  the SOAP and XCAP decoders catch their errors): that request is answered as before (with
  ``Connection: close``), and the worker stops accepting before it goes out (the new
  connections wait in the backlog for the replacement, rather than meet a parser that
  refuses new names) and retires after it.

This module is imported by the decoders (which run without gevent in the unit tests and the
fuzz harnesses): it imports only the standard library.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ngnpro.server")

#: requests between two reads of the resident memory; with 1 MB request bodies the mark
#: is overshot by at most this many MB of interned names
RSS_CHECK_EVERY = 4
#: libxml2's XML_ERR_NO_MEMORY: what the parser reports when its dictionary or an
#: allocation gave out (lxml shows it as "unknown error" or "Memory allocation failed")
_XML_ERR_NO_MEMORY = 2
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

#: why this process must retire, once a decoder found libxml2 out of memory (None: it need not)
_exhausted: str | None = None


def rss_bytes() -> int:
    """This process's resident memory (0 where ``/proc`` is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says libxml2 (or Python) ran out of memory: a ``MemoryError``, or an
    lxml parse error whose log holds XML_ERR_NO_MEMORY -- what a full name dictionary gives,
    the document being perfectly well-formed."""
    if isinstance(exc, MemoryError):
        return True
    entries = getattr(exc, "error_log", None)
    if entries is not None:
        try:
            if any(getattr(e, "type", None) == _XML_ERR_NO_MEMORY for e in entries):
                return True
        except TypeError:
            pass
    return "Memory allocation failed" in str(exc)  # a phrase no name can hold (no spaces in names)


def note_failure(exc: BaseException, where: str) -> bool:
    """Called where a decoder or request handler catches ``exc``: when it is an
    out-of-memory failure, this worker retires once the request is answered.  True then."""
    global _exhausted
    if not out_of_memory(exc):
        return False
    if _exhausted is None:
        _exhausted = f"{where} ran out of memory ({type(exc).__name__}: {str(exc)[:80] or 'no message'})"
        log.warning("%s: this worker retires after the request", _exhausted)
    return True


def exhausted() -> str | None:
    """Why this worker must retire, if a decoder found libxml2 out of memory."""
    return _exhausted


class Recycler:
    """Counts a worker's requests and decides when it retires; ``retire`` is set then (a
    gevent Event, or any object with ``set``/``is_set``) and ``reason`` says why."""

    def __init__(self, max_rss_mb: int, max_requests: int, retire: Any) -> None:
        self.max_rss = max_rss_mb * 1048576
        self.max_requests = max_requests
        self.retire = retire
        self.reason = ""
        self.requests = 0
        #: set when the worker has stopped accepting: every response says Connection: close
        self.closing = False
        #: the worker retires without waiting for its replacement to serve (its parser fails)
        self.at_once = False
        #: stops the server accepting (set by the worker)
        self.stop_accepting: Callable[[], None] = lambda: None

    def before_response(self) -> bool:
        """Called before each response goes out; True when its connection must close
        because the worker's parser is out of memory (it then stops accepting at once)."""
        if _exhausted is None:
            return False
        if not self.at_once:
            self.at_once = self.closing = True
            self.stop_accepting()
            self._retire(_exhausted)
        return True

    def after_request(self) -> None:
        """Once per answered request: retire when a limit is passed."""
        self.requests += 1
        if self.retire.is_set():
            return
        if _exhausted is not None:
            self.before_response()
        elif self.max_requests and self.requests >= self.max_requests:
            self._retire(f"{self.requests} requests answered (worker_max_requests)")
        elif self.max_rss and self.requests % RSS_CHECK_EVERY == 0:
            rss = rss_bytes()
            if rss > self.max_rss:
                self._retire(f"resident memory {rss / 1048576:.0f} MB is over worker_max_rss "
                             f"{self.max_rss // 1048576} MB after {self.requests} requests")

    def _retire(self, reason: str) -> None:
        self.reason = reason
        self.retire.set()
