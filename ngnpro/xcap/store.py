"""XCAP documents in SQL (``ngnpro.models.xcap.XcapDocument``), the edge of the pure code.

A write runs in one transaction: read the row (locked where the database can), let the
pure operation compute the new document, store it with a fresh entity tag and append the
change-log row (topic ``xcap``, key ``auid/xui/filename``) in the same transaction, so that
the presence agent and xcap-diff subscribers polling the change feed see the change exactly
when it commits.  Two clients creating the same document at once meet the unique key: the
loser's transaction is tried again (as after a deadlock), and then sees the winner's document.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lxml import etree
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ngnpro.models.changes import TOPIC_XCAP, record_change
from ngnpro.models.sip import SipAccount
from ngnpro.models.xcap import XcapDocument

from .constraints import service_uris
from .generated import Listed
from .operations import Result
from .xmlsafe import parser


@dataclass(frozen=True)
class Stored:
    document: bytes
    etag: str


def change_key(auid: str, xui: str | None, filename: str) -> str:
    """The change-log key of a document: ``auid/xui/filename`` (``xui`` empty for the
    global tree); the log keeps it lowercased."""
    return f"{auid}/{xui or ''}/{filename}"


def new_etag() -> str:
    """A fresh entity tag: new on every write, even one that leaves the bytes as they were."""
    return uuid.uuid4().hex


class XcapStore:
    """Reads and transactional writes of XCAP documents through a session factory."""

    def __init__(self, sessionmaker: Callable[[], Session], write_lock: Any = None) -> None:
        self.sessionmaker = sessionmaker
        #: across processes on SQLite (``ngnpro.soap.writelock.WriteLock``: a read-then-write
        #: transaction must not race another worker's), and between this process's greenlets
        self.write_lock = write_lock
        self._local_lock = threading.Lock()

    def read(self, auid: str, xui: str | None, filename: str) -> Stored | None:
        with self.sessionmaker() as session:
            row = session.execute(_by_name(auid, xui, filename)).scalar_one_or_none()
            return None if row is None else Stored(row.document.encode("utf-8"), row.etag)

    def write(self, auid: str, xui: str | None, filename: str,
              operation: Callable[[Stored | None, Callable[[], list[str]]], Result]) -> tuple[Result, str | None]:
        """Run ``operation(current, other_service_uris)`` in a transaction and store what it
        returns; returns the result and the document's entity tag afterwards."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self._local_lock:
                    # the SOAP calls' lock: taken (and given back) only if no call of this
                    # process holds it; a SQLite transaction never yields to another greenlet
                    mine = self.write_lock is not None and not self.write_lock.held
                    if mine:
                        self.write_lock.acquire()
                    try:
                        return self._write_once(auid, xui, filename, operation)
                    finally:
                        if mine:
                            self.write_lock.release()
            except (IntegrityError, OperationalError) as exc:
                if attempt == ATTEMPTS or not (isinstance(exc, IntegrityError) or _conflict(exc)):
                    raise
        raise AssertionError("unreachable")

    def _write_once(self, auid: str, xui: str | None, filename: str, operation: Any) -> tuple[Result, str | None]:
        with self.sessionmaker() as session, session.begin():
            row = session.execute(_by_name(auid, xui, filename).with_for_update()).scalar_one_or_none()
            current = None if row is None else Stored(row.document.encode("utf-8"), row.etag)

            def other_service_uris() -> list[str]:
                return _service_uris(session, row.id if row is not None else None)

            result = operation(current, other_service_uris)
            etag = None if row is None else row.etag
            if result.deleted and row is not None:
                session.delete(row)
                etag = None
            elif result.document is not None:
                etag = new_etag()
                text = result.document.decode("utf-8")
                if row is None:
                    session.add(XcapDocument(auid=auid, xui=xui or "", filename=filename, document=text, etag=etag))
                else:
                    row.document, row.etag = text, etag
            else:
                return result, etag
            session.flush()
            record_change(session, TOPIC_XCAP, change_key(auid, xui, filename))
        return result, etag

    def listing(self, xui: str) -> list[Listed]:
        """The documents of a user's trees (for the xcap-directory)."""
        with self.sessionmaker() as session:
            rows = session.execute(select(XcapDocument).where(XcapDocument.xui == xui)).scalars().all()
            return [Listed(r.auid, r.filename, r.etag, r.updated, len(r.document.encode("utf-8"))) for r in rows]

    def ha1(self, username: str, domain: str, algorithm: str) -> str | None:
        """The stored HA1 of ``username@domain`` for ``algorithm`` (MD5 or SHA-256)."""
        with self.sessionmaker() as session:
            row = session.execute(select(SipAccount.ha1, SipAccount.ha1_sha256)
                                  .where(SipAccount.username == username, SipAccount.domain == domain)).first()
        if row is None:
            return None
        return (row.ha1_sha256 if algorithm.upper() == "SHA-256" else row.ha1) or None


#: a write meeting another worker's (unique key, deadlock, serialization) is tried again
ATTEMPTS = 3


def _conflict(exc: OperationalError) -> bool:
    """A deadlock or serialization failure (MariaDB 1213/1205, PostgreSQL 40P01/40001):
    the other transaction has won; ours can run again on what it wrote."""
    orig = exc.orig
    code = orig.args[0] if orig is not None and orig.args else None
    return code in (1213, 1205) or getattr(orig, "sqlstate", None) in ("40P01", "40001")


def _by_name(auid: str, xui: str | None, filename: str) -> Any:
    return select(XcapDocument).where(XcapDocument.auid == auid, XcapDocument.xui == (xui or ""),
                                      XcapDocument.filename == filename)


def _service_uris(session: Session, except_id: int | None) -> list[str]:
    """The service URIs of every other rls-services document (RFC 4826 section 4.4.3: a
    service URI is unique on the whole server)."""
    query = select(XcapDocument.document).where(XcapDocument.auid == "rls-services")
    if except_id is not None:
        query = query.where(XcapDocument.id != except_id)
    out: list[str] = []
    for text in session.execute(query).scalars():
        try:
            out.extend(service_uris(etree.fromstring(text.encode("utf-8"), parser())))
        except etree.XMLSyntaxError:
            continue
    return out
