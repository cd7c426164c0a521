"""The 503 gate of a database outage (sipproxy.proxy.unavailable), without a network."""

from __future__ import annotations

import logging
import sqlite3

from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from sipproxy.proxy.unavailable import Unavailable, is_database_error
from sipproxy.sip.parser import parse_message

REGISTER = (b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
            b"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\nCall-ID: c1\r\n"
            b"CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n")


def _wrapped(cls, text: str):
    return cls("SELECT 1", {}, sqlite3.OperationalError(text))


def test_what_counts_as_the_database_being_away():
    assert is_database_error(_wrapped(OperationalError, "database is locked"))
    assert is_database_error(sqlite3.OperationalError("database is locked"))
    try:  # a driver error reaching us as the cause of another
        raise RuntimeError("x") from _wrapped(OperationalError, "connection refused")
    except RuntimeError as exc:
        assert is_database_error(exc)
    # bugs stay bugs (500 with a traceback)
    assert not is_database_error(_wrapped(OperationalError, "no such table: location"))
    assert not is_database_error(_wrapped(ProgrammingError, "relation does not exist"))
    assert not is_database_error(_wrapped(IntegrityError, "UNIQUE constraint failed"))
    assert not is_database_error(ValueError("x"))


def test_503_with_retry_after_held_for_a_moment_and_logged_once(caplog):
    now = [100.0]
    gate = Unavailable(retry_after=5, hold=1.0, clock=lambda: now[0])
    req = parse_message(REGISTER)
    assert gate.refuse(req) is None  # no outage: go ahead
    with caplog.at_level(logging.INFO, logger="sipproxy.database"):
        r = gate.failed(_wrapped(OperationalError, "database is locked"), req)
        assert r.status == 503 and r.headers.get("retry-after") == "5"
        now[0] += 0.5
        assert gate.refuse(req).status == 503  # within hold: not tried
        now[0] += 0.6
        assert gate.refuse(req) is None  # one more try
        gate.failed(_wrapped(OperationalError, "database is locked"), req)
        gate.succeeded()
        gate.succeeded()
    lines = [rec.getMessage() for rec in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("database unavailable (OperationalError")
    assert lines[1].startswith("database answering again after 1.1 s; 3 new requests")
    assert gate.down_since is None and gate.outages == 1
