"""The relay's view of the provisioned SIP accounts: HA1 hashes and domains, from SQL.

AUTH is rare (once per client connection), so each look-up is a fresh query: a password or
domain changed through provisioning counts at the next AUTH, with no cache to go stale.
"""

from __future__ import annotations

from sqlalchemy import select

from ngnpro.models import SipAccount, SipDomain
from ngnpro.models.database import open_database

__all__ = ["Accounts"]


class Accounts:
    def __init__(self, url: str) -> None:
        self.engine, self.sessions = open_database(url)

    def ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        """The stored HA1 of ``username@realm`` for ``algorithm`` (MD5 or SHA-256)."""
        column = SipAccount.ha1_sha256 if algorithm.upper() == "SHA-256" else SipAccount.ha1
        with self.sessions() as s:
            value = s.execute(select(column).where(SipAccount.username == username,
                                                   SipAccount.domain == realm)).scalar_one_or_none()
        return value or None

    def domain_of(self, host: str) -> str | None:
        """The provisioned domain ``host`` is, or is a sub-domain of (``msrp.example.com``
        belongs to ``example.com``); the longest match wins."""
        labels = host.lower().split(".")
        candidates = [".".join(labels[i:]) for i in range(len(labels) - 1)] or [host.lower()]
        with self.sessions() as s:
            found = set(s.execute(select(SipDomain.domain).where(SipDomain.domain.in_(candidates))).scalars())
        for c in candidates:
            if c in found:
                return c
        return None

    def close(self) -> None:
        self.engine.dispose()
