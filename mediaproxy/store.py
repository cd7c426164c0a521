"""Session summaries into the shared ``media_sessions`` table, off the forwarding thread.

A database round trip takes milliseconds; the relay loop must not stall for it, so ended
sessions are queued and written by one background thread.  A database that is down costs
the summaries written meanwhile (logged), never the media.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import queue
import threading
from typing import Any

log = logging.getLogger("mediaproxy.store")

#: summaries waiting for the database at most (a database outage must not exhaust memory)
MAX_QUEUED = 100_000


def _parse_time(text: str) -> _dt.datetime:
    return _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def summary_row(summary: dict[str, Any]):  # noqa: ANN201 - ngnpro.models.MediaSession
    """The ``MediaSession`` row of a session summary (see ``Session.summary``)."""
    from ngnpro.models import MediaSession

    return MediaSession(
        call_id=summary["call_id"][:255],
        from_tag=summary["from_tag"][:128],
        to_tag=summary["to_tag"][:128],
        relay=summary["relay"][:128],
        streams=json.dumps(summary["streams"], separators=(",", ":")),
        start_time=_parse_time(summary["start"]),
        end_time=_parse_time(summary["end"]),
        duration=int(round(summary["duration"])),
        reason=summary["reason"][:64],
    )


class SummaryStore:
    """A queue of summaries and the thread that writes them."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue(MAX_QUEUED)
        self.thread = threading.Thread(target=self._run, name="summary-store", daemon=True)
        self.thread.start()

    def put(self, summary: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(summary)
        except queue.Full:  # the database is far behind: keep relaying, lose the summary
            log.error("summary queue full; summary of %s not stored", summary.get("call_id"))

    def _run(self) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        from ngnpro.models import open_database

        try:
            engine, factory = open_database(self.db_url)
        except SQLAlchemyError as exc:
            log.error("database unavailable, summaries are not stored: %s", str(exc).splitlines()[0])
            engine = factory = None
        while True:
            summary = self.queue.get()
            if summary is None:
                break
            if factory is None:
                continue
            try:
                with factory() as db, db.begin():
                    db.add(summary_row(summary))
            except (SQLAlchemyError, KeyError, ValueError) as exc:
                log.error("cannot store summary of %s: %s", summary.get("call_id"), str(exc).splitlines()[0])
        if engine is not None:
            engine.dispose()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop."""
        try:
            self.queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self.thread.join(timeout)
