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
domain set is loaded whole (domains are few), with each domain's ACL (fraud control: who may
call the domain's subscribers), and reloaded when a domain changes -- ngnpro logs a
``sip_domain`` change for an ACL change like for any other domain member.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from decimal import Decimal

from sqlalchemy import Engine, bindparam, func, select
from sqlalchemy.orm import Session

from ngnpro.models import (
    AcceptRule,
    AccountingRecord,
    BarringPrefix,
    ChangeFeed,
    Dialog,
    PhonebookEntry,
    RejectMember,
    SipAccount,
    SipAccountAcl,
    SipAccountGroup,
    SipAccountProperty,
    SipAlias,
    SipDomain,
    SipDomainAcl,
)
from ngnpro.models.changes import TOPIC_SIP_ACCOUNT, TOPIC_SIP_ALIAS, TOPIC_SIP_DOMAIN, Change
from sipproxy.directory.account import AcceptWindow, Account
from sipproxy.directory.feed import FeedFollower, engine_of

log = logging.getLogger("sipproxy.directory")

_MISSING = object()

# Core statements built once (no ORM objects on the hot path: a miss costs two indexed
# queries, not an ORM load with its relationship machinery).
_A = SipAccount.__table__
_G = SipAccountGroup.__table__
_ACCOUNT_COLUMNS = (
    _A.c.id, _A.c.username, _A.c.domain, _A.c.ha1, _A.c.ha1b, _A.c.ha1_sha256, _A.c.region,
    _A.c.timeout, _A.c.call_limit, _A.c.always_relay, _A.c.prepaid, _A.c.rpid, _A.c.quickdial_prefix,
    _A.c.quota, _A.c.balance, _A.c.timezone,
)
_SELECT_ACCOUNT = select(*_ACCOUNT_COLUMNS).where(_A.c.username == bindparam("u"), _A.c.domain == bindparam("d"))
_SELECT_GROUPS = select(_G.c.name).where(_G.c.account_id == bindparam("id"))
_SELECT_ALL_ACCOUNTS = select(*_ACCOUNT_COLUMNS).order_by(_A.c.id).limit(bindparam("n"))
_SELECT_ALL_GROUPS = select(_G.c.account_id, _G.c.name).where(_G.c.account_id <= bindparam("top"))
_SELECT_ALIAS = select(SipAlias.target_username, SipAlias.target_domain).where(
    SipAlias.username == bindparam("u"), SipAlias.domain == bindparam("d"))
_SELECT_DOMAINS = select(SipDomain.domain)
_DOM, _DACL = SipDomain.__table__, SipDomainAcl.__table__
#: every domain's ACL, each in its provisioned order (read with the domain set)
_SELECT_DOMAIN_ACLS = (select(_DOM.c.domain, _DACL.c.ip, _DACL.c.mask)
                       .join_from(_DACL, _DOM, _DACL.c.domain_id == _DOM.c.id)
                       .order_by(_DACL.c.domain_id, _DACL.c.position, _DACL.c.id))

# What authorization needs of an account (sipproxy.auth.policy), read with it: for one
# account (``id``) on a miss, for a range (``<= top``) when warming up.
_P, _ACL, _BAR = SipAccountProperty.__table__, SipAccountAcl.__table__, BarringPrefix.__table__
_REJ, _ACC, _PB = RejectMember.__table__, AcceptRule.__table__, PhonebookEntry.__table__
_EXTRAS = {
    "blocked_by": (select(_P.c.account_id, _P.c.value).where(_P.c.name == "blocked_by"), _P),
    "acl": (select(_ACL.c.account_id, _ACL.c.ip, _ACL.c.mask).order_by(_ACL.c.id), _ACL),
    "barring": (select(_BAR.c.account_id, _BAR.c.prefix).order_by(_BAR.c.id), _BAR),
    "reject": (select(_REJ.c.account_id, _REJ.c.uri).order_by(_REJ.c.id), _REJ),
    "accept": (select(_ACC.c.account_id, _ACC.c.persistent, _ACC.c.start, _ACC.c.stop, _ACC.c.days,
                      _ACC.c.groups, _ACC.c.duration, _ACC.c.set_at).order_by(_ACC.c.id), _ACC),
    "phonebook": (select(_PB.c.account_id, _PB.c.uri, _PB.c["group"]).where(_PB.c["group"] != "")
                  .order_by(_PB.c.id), _PB),
}
_EXTRAS_ONE = {k: q.where(t.c.account_id == bindparam("id")) for k, (q, t) in _EXTRAS.items()}
_EXTRAS_UPTO = {k: q.where(t.c.account_id <= bindparam("top")) for k, (q, t) in _EXTRAS.items()}
_AR, _D = AccountingRecord.__table__, Dialog.__table__
#: this month's accounted cost of a billing party (the quota check)
_SELECT_MONTH_COST = select(func.coalesce(func.sum(_AR.c.price), 0)).where(
    _AR.c.billing_party == bindparam("who"), _AR.c.start_time >= bindparam("since"))
#: the calls an account has going as the caller (dialog rows are written at the answer)
_COUNT_DIALOGS = select(func.count()).select_from(_D).where(_D.c.caller == bindparam("who"),
                                                            _D.c.state != "terminated")


class _LRU:
    """A small LRU map keyed by ``(user, domain)``; ``get`` returns ``_MISSING`` when the key
    is not cached.  Keys are also indexed by their case-folded ``user@domain`` (what the
    change feed names), so dropping the changed ones costs per change, not per entry: a
    provisioning burst must not make each poll walk a cache of 100,000 accounts while the
    worker's SIP traffic waits."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.data: OrderedDict = OrderedDict()
        self._by_aor: dict[str, set] = {}

    def get(self, key: object) -> object:
        value = self.data.get(key, _MISSING)
        if value is not _MISSING:
            self.data.move_to_end(key)
        return value

    def put(self, key: object, value: object) -> None:
        if key not in self.data:
            self._by_aor.setdefault(_aor_key(key), set()).add(key)
        self.data[key] = value
        self.data.move_to_end(key)
        while len(self.data) > self.capacity:
            old, _ = self.data.popitem(last=False)
            self._unindex(old)

    def _unindex(self, key: object) -> None:
        aor = _aor_key(key)
        keys = self._by_aor.get(aor)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_aor[aor]

    def drop(self, aors: set[str]) -> int:
        """Forget every key whose case-folded ``user@domain`` is in ``aors``."""
        n = 0
        for aor in aors:
            for key in self._by_aor.pop(aor, ()):
                if self.data.pop(key, _MISSING) is not _MISSING:
                    n += 1
        return n

    def clear(self) -> None:
        self.data.clear()
        self._by_aor.clear()

    def __len__(self) -> int:
        return len(self.data)


def _extras(conn, statements: dict, params: dict) -> dict[int, dict]:  # noqa: ANN001
    """The authorization lists of the accounts ``statements`` select, by account id."""
    out: dict[int, dict] = {}
    for key, stmt in statements.items():
        for row in conn.execute(stmt, params):
            entry = out.setdefault(row[0], {})
            if key == "blocked_by":
                entry["blocked_by"] = (row[1] or "").strip()
            elif key == "acl":
                entry.setdefault("acl", []).append((row[1], int(row[2] if row[2] is not None else 32)))
            elif key == "barring":
                entry.setdefault("barring_prefixes", []).append(row[1])
            elif key == "reject":
                entry.setdefault("reject_members", []).append(row[1])
            elif key == "accept":
                entry.setdefault("accept_rules", []).append(AcceptWindow(
                    persistent=bool(row[1]), start=row[2] or "", stop=row[3] or "",
                    days=row[4] if row[4] is not None else 127,
                    groups=frozenset(g.strip() for g in (row[5] or "").split(",") if g.strip()),
                    duration=row[6] or 0, set_at=row[7]))
            elif key == "phonebook":
                entry.setdefault("phonebook", []).append((row[1], row[2]))
    return {k: {n: tuple(v) if isinstance(v, list) else v for n, v in e.items()} for k, e in out.items()}


def _account(row, groups: frozenset[str], extras: dict | None = None) -> Account:  # noqa: ANN001
    return Account(
        id=row.id, username=row.username, domain=row.domain.lower(), ha1=row.ha1 or "",
        ha1b=row.ha1b or "", ha1_sha256=row.ha1_sha256 or "", groups=groups, region=row.region or "",
        timeout=row.timeout or 35, call_limit=row.call_limit or 0, always_relay=bool(row.always_relay),
        prepaid=bool(row.prepaid), rpid=row.rpid or "", quickdial_prefix=(row.quickdial_prefix or "").strip(),
        quota=row.quota or 0, balance=Decimal(row.balance or 0), timezone=(row.timezone or "").strip(),
        **(extras or {}),
    )


def _aor_key(key: object) -> str:
    user, domain = key  # type: ignore[misc]
    return f"{user}@{domain}".lower()


class Directory(FeedFollower):
    """Cached look-ups of domains, accounts and aliases, kept fresh by the change feed."""

    name = "directory"

    def __init__(
        self,
        session_factory: Callable[[], Session],
        config_domains: Iterable[str] = (),
        *,
        capacity: int = 100_000,
        refresh_interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        quota_refresh: float = 5.0,
    ) -> None:
        super().__init__(ChangeFeed(session_factory), refresh_interval, clock)
        self._session_factory = session_factory
        self._engine: Engine = engine_of(session_factory)
        self._capacity = capacity
        self._config_domains = frozenset(d.lower() for d in config_domains)
        self._accounts = _LRU(capacity)
        self._aliases = _LRU(capacity)
        self._domains: frozenset[str] | None = None
        #: ``(ip, mask)`` networks per domain with an ACL, loaded with ``_domains``
        self._domain_acls: dict[str, tuple[tuple[str, int], ...]] = {}
        #: bumped by every domain change, so a load that a change overtook is not kept
        self._domains_generation = 0
        self.hits = 0
        self.misses = 0
        #: this month's cost per billing party, read again after ``quota_refresh`` seconds
        self.quota_refresh = quota_refresh
        self._month_costs: dict[str, tuple[float, Decimal]] = {}

    # -- look-ups -----------------------------------------------------------------------

    def is_local_domain(self, domain: str) -> bool:
        """True for a provisioned SipDomain or a ``[sipproxy] domains`` entry."""
        self._maybe_refresh()
        domain = domain.lower()
        if domain in self._config_domains:
            return True
        domains = self._domains if self._domains is not None else self._load_domains()[0]
        return domain in domains

    def domain_acl(self, domain: str) -> tuple[tuple[str, int], ...]:
        """The ``(ip, mask)`` networks calls to ``domain``'s subscribers may come from; empty
        when the domain has no ACL (or is only a ``[sipproxy] domains`` entry)."""
        self._maybe_refresh()
        acls = self._domain_acls if self._domains is not None else self._load_domains()[1]
        return acls.get(domain.lower(), ())

    def _load_domains(self) -> tuple[frozenset[str], dict[str, tuple[tuple[str, int], ...]]]:
        """Read the domain set and every domain's ACL (both are small) in one go.  When a
        domain change is applied while the reads wait on the database (another greenlet
        polls the feed), the result may predate it: it answers this look-up but is not
        kept, so the next look-up reads again."""
        generation = self._domains_generation
        acls: dict[str, list[tuple[str, int]]] = {}
        with self._engine.connect() as conn:
            domains = frozenset(d.lower() for d in conn.scalars(_SELECT_DOMAINS))
            for name, ip, mask in conn.execute(_SELECT_DOMAIN_ACLS):
                acls.setdefault(name.lower(), []).append((ip, int(mask if mask is not None else 32)))
        domain_acls = {name: tuple(entries) for name, entries in acls.items()}
        if generation == self._domains_generation:
            self._domains, self._domain_acls = domains, domain_acls
        return domains, domain_acls

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
        with self._engine.connect() as conn:
            row = conn.execute(_SELECT_ALIAS, {"u": key[0], "d": key[1]}).first()
        target = (row[0], row[1]) if row else None
        self._aliases.put(key, target)
        return target

    def _load_account(self, username: str, domain: str) -> Account | None:
        with self._engine.connect() as conn:
            row = conn.execute(_SELECT_ACCOUNT, {"u": username, "d": domain}).first()
            if row is None:
                return None
            groups = frozenset(conn.scalars(_SELECT_GROUPS, {"id": row.id}))
            extras = _extras(conn, _EXTRAS_ONE, {"id": row.id}).get(row.id)
        return _account(row, groups, extras)

    # -- authorization reads ------------------------------------------------------------

    def month_cost(self, billing_party: str, now: _dt.datetime | None = None) -> Decimal:
        """The cost accounted this month (UTC) to ``billing_party`` (a SipId): the sum of
        the ``accounting`` rows' price since the first of the month.  Cached per party for
        ``quota_refresh`` seconds, so a burst of calls costs one query."""
        key = billing_party.lower()
        cached = self._month_costs.get(key)
        t = self._clock()
        if cached is not None and t - cached[0] < self.quota_refresh:
            return cached[1]
        now = now or _dt.datetime.now(_dt.UTC).replace(tzinfo=None)
        since = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        with self._engine.connect() as conn:
            cost = Decimal(str(conn.execute(_SELECT_MONTH_COST, {"who": billing_party, "since": since}).scalar() or 0))
        if len(self._month_costs) >= self._capacity:
            self._month_costs.clear()
        self._month_costs[key] = (t, cost)
        return cost

    def active_calls(self, caller: str) -> int:
        """How many ``dialogs`` rows not yet terminated name ``caller`` (a SipId) as the
        caller: its ringing (``early``) and answered calls on every worker and proxy sharing
        the database (not cached: the call limit must see the call started a moment ago)."""
        with self._engine.connect() as conn:
            return int(conn.execute(_COUNT_DIALOGS, {"who": caller}).scalar() or 0)

    def warm(self, limit: int = 20_000) -> int:
        """Load up to ``limit`` (and ``capacity``) accounts in two queries, so the first
        REGISTER of each user after a start does not pay a database round trip; returns how
        many.  Bounded so a large subscriber base does not slow the start down."""
        with self._engine.connect() as conn:
            rows = conn.execute(_SELECT_ALL_ACCOUNTS, {"n": min(limit, self._capacity)}).all()
            if not rows:
                return 0
            groups: dict[int, set[str]] = {}
            for account_id, name in conn.execute(_SELECT_ALL_GROUPS, {"top": rows[-1].id}):
                groups.setdefault(account_id, set()).add(name)
            extras = _extras(conn, _EXTRAS_UPTO, {"top": rows[-1].id})
        for row in rows:
            key = (row.username, row.domain.lower())
            if self._accounts.get(key) is _MISSING:
                self._accounts.put(key, _account(row, frozenset(groups.get(row.id, ())), extras.get(row.id)))
        return len(rows)

    # -- freshness ------------------------------------------------------------------------

    def apply(self, changes: list[Change]) -> None:
        account_keys: set[str] = set()
        alias_keys: set[str] = set()
        for change in changes:
            if change.topic == TOPIC_SIP_DOMAIN:
                self._domains = None
                self._domains_generation += 1
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
            self._accounts.drop(account_keys)
        if alias_keys:
            self._aliases.drop(alias_keys)

    @property
    def cached_accounts(self) -> int:
        return len(self._accounts)
