"""The proxy's read-side view of provisioning: local domains, accounts, aliases.

Every REGISTER and every call asks "is this domain ours?", "what are this user's
credentials and groups?", "is this an alias?".  Asking SQL each time would cap the proxy at
the database's query rate, so answers are cached here -- negative answers too, so a scan of
unknown users cannot hammer the database.

Freshness: ngnpro logs every provisioning change in ``change_log`` (``record_change``) in the
same transaction as the change.  :meth:`Directory.refresh` polls that feed
(:class:`ngnpro.models.ChangeFeed`) and drops only the keys that changed; it runs every
``refresh_interval`` seconds (a greenlet from :meth:`Directory.start`, or lazily from the
look-ups themselves when no greenlet runs), so a change is seen well within a second.

Memory is bounded: accounts and aliases live in LRU tables of ``capacity`` entries; the
domain set is loaded whole (domains are few) and reloaded when a domain changes.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from ngnpro.models import ChangeFeed, SipAccount, SipAccountGroup, SipAlias, SipDomain
from ngnpro.models.changes import TOPIC_SIP_ACCOUNT, TOPIC_SIP_ALIAS, TOPIC_SIP_DOMAIN
from ngnpro.models.sip import GROUP_BLOCKED

log = logging.getLogger("sipproxy.directory")

_MISSING = object()


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
    def aor(self) -> str:
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


class _LRU:
    """A small LRU map; ``get`` returns ``_MISSING`` when the key is not cached."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.data: OrderedDict = OrderedDict()

    def get(self, key: object) -> object:
        value = self.data.get(key, _MISSING)
        if value is not _MISSING:
            self.data.move_to_end(key)
        return value

    def put(self, key: object, value: object) -> None:
        self.data[key] = value
        self.data.move_to_end(key)
        while len(self.data) > self.capacity:
            self.data.popitem(last=False)

    def drop(self, keys: set[str], keyfunc: Callable[[object], str]) -> int:
        doomed = [k for k in self.data if keyfunc(k) in keys]
        for k in doomed:
            del self.data[k]
        return len(doomed)

    def clear(self) -> None:
        self.data.clear()

    def __len__(self) -> int:
        return len(self.data)


def _aor_key(key: object) -> str:
    user, domain = key  # type: ignore[misc]
    return f"{user}@{domain}".lower()


class Directory:
    """Cached look-ups of domains, accounts and aliases, kept fresh by the change feed."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        config_domains: Iterable[str] = (),
        *,
        capacity: int = 100_000,
        refresh_interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session_factory = session_factory
        self._config_domains = frozenset(d.lower() for d in config_domains)
        self._accounts = _LRU(capacity)
        self._aliases = _LRU(capacity)
        self._domains: frozenset[str] | None = None
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._feed = ChangeFeed(session_factory)
        self._last_refresh = clock()
        self._greenlet = None
        self.hits = 0
        self.misses = 0

    # -- look-ups -----------------------------------------------------------------------

    def is_local_domain(self, domain: str) -> bool:
        """True for a provisioned SipDomain or a ``[sipproxy] domains`` entry."""
        self._maybe_refresh()
        domain = domain.lower()
        if domain in self._config_domains:
            return True
        if self._domains is None:
            with self._session_factory() as s:
                self._domains = frozenset(d.lower() for d in s.scalars(select(SipDomain.domain)))
        return domain in self._domains

    def account(self, username: str, domain: str) -> Account | None:
        """The account ``username@domain`` (user part case-sensitive, domain not), or None."""
        self._maybe_refresh()
        key = (username, domain.lower())
        cached = self._accounts.get(key)
        if cached is not _MISSING:
            self.hits += 1
            return cached  # type: ignore[return-value]
        self.misses += 1
        account = self._load_account(*key)
        self._accounts.put(key, account)
        return account

    def alias(self, username: str, domain: str) -> tuple[str, str] | None:
        """The target ``(username, domain)`` of an alias address, or None."""
        self._maybe_refresh()
        key = (username, domain.lower())
        cached = self._aliases.get(key)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        with self._session_factory() as s:
            row = s.execute(
                select(SipAlias.target_username, SipAlias.target_domain)
                .where(SipAlias.username == key[0], SipAlias.domain == key[1])
            ).first()
        target = (row[0], row[1]) if row else None
        self._aliases.put(key, target)
        return target

    def _load_account(self, username: str, domain: str) -> Account | None:
        with self._session_factory() as s:
            acc = s.scalars(
                select(SipAccount).where(SipAccount.username == username, SipAccount.domain == domain)
            ).first()
            if acc is None:
                return None
            groups = frozenset(
                s.scalars(select(SipAccountGroup.name).where(SipAccountGroup.account_id == acc.id))
            )
            return Account(
                id=acc.id, username=acc.username, domain=acc.domain.lower(), ha1=acc.ha1 or "",
                ha1b=acc.ha1b or "", ha1_sha256=acc.ha1_sha256 or "", groups=groups,
                region=acc.region or "", timeout=acc.timeout or 35, call_limit=acc.call_limit or 0,
                always_relay=bool(acc.always_relay), prepaid=bool(acc.prepaid), rpid=acc.rpid or "",
            )

    # -- freshness ------------------------------------------------------------------------

    def refresh(self) -> int:
        """Apply the changes committed since the last call; returns how many were read."""
        self._last_refresh = self._clock()
        changes = self._feed.poll()
        if not changes:
            return 0
        account_keys: set[str] = set()
        alias_keys: set[str] = set()
        for change in changes:
            if change.topic == TOPIC_SIP_DOMAIN:
                self._domains = None
                # A renamed or deleted domain takes its accounts along (ON UPDATE CASCADE).
                self._accounts.clear()
                self._aliases.clear()
            elif change.topic == TOPIC_SIP_ACCOUNT:
                if change.key:
                    account_keys.add(change.key.lower())
                else:
                    self._accounts.clear()
            elif change.topic == TOPIC_SIP_ALIAS:
                if change.key:
                    alias_keys.add(change.key.lower())
                else:
                    self._aliases.clear()
        if account_keys:
            self._accounts.drop(account_keys, _aor_key)
        if alias_keys:
            self._aliases.drop(alias_keys, _aor_key)
        log.debug("directory: %d provisioning changes applied", len(changes))
        return len(changes)

    def _maybe_refresh(self) -> None:
        """Without a refresher greenlet, look-ups poll the feed themselves when it is due."""
        if self._greenlet is None and self._clock() - self._last_refresh >= self.refresh_interval:
            self._safe_refresh()

    def _safe_refresh(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # noqa: BLE001 - a database hiccup must not take the proxy down
            # The feed keeps its position, so the changes missed now are applied on the
            # next successful poll; meanwhile the cache keeps answering.
            log.warning("directory: change feed poll failed (%s); keeping the cache", exc)

    def start(self) -> None:
        """Run :meth:`refresh` every ``refresh_interval`` seconds in a gevent greenlet."""
        import gevent

        def loop() -> None:
            while True:
                gevent.sleep(self.refresh_interval)
                self._safe_refresh()

        if self._greenlet is None:
            self._greenlet = gevent.spawn(loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None

    @property
    def cached_accounts(self) -> int:
        return len(self._accounts)
