"""XCAP documents (RFC 4825): what the XCAP server on ngnpro's HTTP server stores and the
presence agent reads (pres-rules, resource-lists, rls-services, pidf-manipulation).

A document is named by its document selector: the application usage (``auid``), the tree
(``xui`` is ``user@domain`` for a user's tree, empty for the global tree) and the file name.
Documents live in SQL, not on a server's disk, so every proxy sharing the database evaluates
the same rules, and a change is seen everywhere through the change feed.
"""

from __future__ import annotations

import datetime as _dt

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, BigId, utcnow

#: Room for a whole document on every backend (MariaDB's TEXT stops at 64 KiB).
DocumentText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


class XcapDocument(Base):
    """One XCAP document, with the entity tag clients condition their writes on."""

    __tablename__ = "xcap_documents"
    __table_args__ = (UniqueConstraint("auid", "xui", "filename"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: application unique id, e.g. ``pres-rules``, ``org.openmobilealliance.pres-rules``
    auid: Mapped[str] = mapped_column(String(64))
    #: XCAP User Identifier, ``user@domain``; empty for the global tree
    xui: Mapped[str] = mapped_column(String(255), index=True)
    filename: Mapped[str] = mapped_column(String(190))
    #: the document, UTF-8 XML as last written
    document: Mapped[str] = mapped_column(DocumentText)
    #: entity tag (RFC 4825 section 7.11), new on every change
    etag: Mapped[str] = mapped_column(String(64))
    updated: Mapped[_dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
