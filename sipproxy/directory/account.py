"""A subscriber as the proxy sees it: identity, credentials' hashes, groups and limits.

Sans-I/O (no SQL here: :mod:`.store` reads the rows), so the authentication and routing
decisions can take an :class:`Account` without importing the database layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Account", "GROUP_BLOCKED"]

#: the account group that bars an account (ngnpro.models.sip.GROUP_BLOCKED: a test pins them equal)
GROUP_BLOCKED = "blocked"


@dataclass(frozen=True)
class Account:
    """What the proxy needs of a subscriber (never the clear-text password)."""

    id: int
    username: str
    domain: str
    ha1: str
    ha1b: str
    ha1_sha256: str
    groups: frozenset[str] = field(default_factory=frozenset)
    region: str = ""
    timeout: int = 35
    call_limit: int = 0
    always_relay: bool = False
    prepaid: bool = False
    rpid: str = ""

    @property
    def sip_id(self) -> str:
        """``username@domain`` (NGNPro's SipId)."""
        return f"{self.username}@{self.domain}"

    @property
    def blocked(self) -> bool:
        return GROUP_BLOCKED in self.groups

    def digest_ha1(self, auth_username: str, algorithm: str) -> str | None:
        """The stored hash matching what the client put in ``username`` and ``algorithm``:
        ``user`` -> ha1 / ha1_sha256, ``user@domain`` -> ha1b (MD5 only)."""
        if auth_username == self.username:
            return (self.ha1_sha256 if algorithm == "SHA-256" else self.ha1) or None
        if algorithm == "MD5" and auth_username.lower() == f"{self.username}@{self.domain}".lower():
            return self.ha1b or None
        return None
