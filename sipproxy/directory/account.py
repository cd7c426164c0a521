"""A subscriber as the proxy sees it: identity, credentials' hashes, groups and limits.

Sans-I/O (no SQL here: :mod:`.store` reads the rows), so the authentication and routing
decisions can take an :class:`Account` without importing the database layer.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from decimal import Decimal

__all__ = ["Account", "AcceptWindow", "GROUP_BLOCKED", "GROUP_PSTN", "GROUP_QUOTA"]

#: the account group that bars an account (ngnpro.models.sip.GROUP_BLOCKED: a test pins them equal)
GROUP_BLOCKED = "blocked"
#: PSTN access for a postpaid account (ngnpro.models.sip.GROUP_PSTN, pinned equal by a test)
GROUP_PSTN = "free-pstn"
#: the account went over its spending quota: no PSTN calls (ngnpro.models.sip.GROUP_QUOTA)
GROUP_QUOTA = "quota"


@dataclass(frozen=True)
class AcceptWindow:
    """An accept rule ("do not disturb", ngnpro.models.AcceptRule): persistent ones hold a
    ``start``-``stop`` window (``HH:MM``) on ``days`` (Mon 1 ... Sun 64); a temporary one
    runs ``duration`` minutes (0: until removed) from ``set_at`` (UTC).  ``groups``: who is
    accepted (``everybody``, ``nobody``, phonebook group names)."""

    persistent: bool
    groups: frozenset[str]
    start: str = ""
    stop: str = ""
    days: int = 127
    duration: int = 0
    set_at: _dt.datetime | None = None


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
    #: quick dial: this prefix + a short dialled number names another account (routing guide)
    quickdial_prefix: str = ""
    # -- authorization (sipproxy.auth.policy), read with the account ----------------------
    #: who put the account in the ``blocked`` group: the ``blocked_by`` property
    #: (``customer`` when its customer did; anything else: the administrator)
    blocked_by: str = ""
    #: monthly spending quota (0: none) and the prepaid balance
    quota: int = 0
    balance: Decimal = Decimal(0)
    #: the account's time zone (accept rules' windows), e.g. ``Europe/Amsterdam``
    timezone: str = ""
    #: IP access list: ``(ip, mask)`` networks calls to the account may come from
    acl: tuple[tuple[str, int], ...] = ()
    #: outgoing call barring: ``+`` E.164 prefixes
    barring_prefixes: tuple[str, ...] = ()
    #: callers refused (``sip:`` URIs)
    reject_members: tuple[str, ...] = ()
    accept_rules: tuple[AcceptWindow, ...] = ()
    #: ``(uri, group)`` of the phonebook entries that have a group (the accept rules' groups)
    phonebook: tuple[tuple[str, str], ...] = ()

    @property
    def sip_id(self) -> str:
        """``username@domain`` (NGNPro's SipId)."""
        return f"{self.username}@{self.domain}"

    @property
    def blocked(self) -> bool:
        return GROUP_BLOCKED in self.groups

    @property
    def pstn_access(self) -> bool:
        """May call PSTN numbers: in ``free-pstn`` (postpaid) or prepaid (the balance pays),
        and neither blocked nor over quota.  Emergency numbers do not ask this."""
        if self.blocked or GROUP_QUOTA in self.groups:
            return False
        return GROUP_PSTN in self.groups or self.prepaid

    def digest_ha1(self, auth_username: str, algorithm: str) -> str | None:
        """The stored hash matching what the client put in ``username`` and ``algorithm``:
        ``user`` -> ha1 / ha1_sha256, ``user@domain`` -> ha1b (MD5 only)."""
        if auth_username == self.username:
            return (self.ha1_sha256 if algorithm == "SHA-256" else self.ha1) or None
        if algorithm == "MD5" and auth_username.lower() == f"{self.username}@{self.domain}".lower():
            return self.ha1b or None
        return None
