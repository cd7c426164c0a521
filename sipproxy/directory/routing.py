"""The proxy's read side of the routing data: trusted peers, the LCR table, call diversions
and emergency mappings, cached and refreshed from ngnpro's change feed within a second.

Same pattern as :mod:`.store` (the directory): Core statements built once, answers cached
(negative ones too), :meth:`RoutingData.refresh` polls ``change_log`` every
``refresh_interval`` seconds (a greenlet from :meth:`start`, or lazily from the look-ups) and
drops what changed:

* ``trusted_peer`` -- the peer table (loaded whole: peers are few, and every request from an
  unknown address asks, so a whole table answers "no" without a query);
* ``lcr`` -- carriers, gateways, gateway rules and routes, loaded whole into one
  :class:`~.routingdata.LcrTable` snapshot (ngnpro logs one ``lcr`` change per write);
* ``sip_account`` keyed ``user@domain`` -- that account's diversions (ngnpro's
  ``setCallDiversions`` logs the account's change); ``sip_domain`` -- all diversions;
* ``emergency`` -- the emergency mappings (loaded whole; a handful of rows).  No NGNPro
  method writes them (operators insert rows), so the table is also reloaded when it is
  older than ``emergency_max_age`` seconds: a row written without its ``change_log`` entry
  is still seen, late rather than never.

A table is reloaded on the first look-up after its change, so a burst of provisioning
writes costs one reload.  A write that commits while a table is being read is logged after
it, so the next poll drops the table again: a snapshot is at most one poll out of date.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session

from ngnpro.models import ChangeFeed, lcr
from ngnpro.models.changes import (
    TOPIC_EMERGENCY,
    TOPIC_LCR,
    TOPIC_SIP_ACCOUNT,
    TOPIC_SIP_DOMAIN,
    TOPIC_TRUSTED_PEER,
    Change,
)
from ngnpro.models.sip import CallDiversion, EmergencyMapping, SipAccount, TrustedPeer
from sipproxy.directory.feed import FeedFollower, engine_of
from sipproxy.directory.routingdata import (
    Carrier,
    Diversion,
    Gateway,
    LcrTable,
    Route,
    Rule,
    normalise_ip,
    rule_order,
)
from sipproxy.directory.routingdata import EmergencyMapping as Mapping
from sipproxy.directory.routingdata import TrustedPeer as Peer
from sipproxy.directory.store import _LRU, _MISSING

log = logging.getLogger("sipproxy.directory.routing")

__all__ = ["RoutingData"]

_P = TrustedPeer.__table__
_SELECT_PEERS = select(
    _P.c.ip, _P.c.description, _P.c.tenant, _P.c.carrier_name, _P.c.originator, _P.c.prefix, _P.c.strip,
    _P.c.tags, _P.c.billing_id, _P.c.call_limit, _P.c.blocked, _P.c.msteams, _P.c.prepaid,
    _P.c.enum_lookup, _P.c.transit,
)
_C, _GW, _R, _RT = (lcr.Carrier.__table__, lcr.Gateway.__table__, lcr.GatewayRule.__table__, lcr.Route.__table__)
_SELECT_CARRIERS = select(_C.c.id, _C.c.name)
_SELECT_GATEWAYS = select(_GW.c.id, _GW.c.name, _GW.c.carrier_id, _GW.c.transport, _GW.c.ip, _GW.c.port).order_by(_GW.c.id)
_SELECT_RULES = select(_R.c.id, _R.c.gateway_id, _R.c.prefix, _R.c.strip, _R.c.prepend, _R.c.min_length, _R.c.max_length)
_SELECT_ROUTES = select(_RT.c.id, _RT.c.carrier_id, _RT.c.prefix, _RT.c.originator, _RT.c.priority)
_D, _A = CallDiversion.__table__, SipAccount.__table__
_SELECT_DIVERSIONS = (
    select(_D.c.condition, _D.c.uri).join(_A, _A.c.id == _D.c.account_id)
    .where(_A.c.username == bindparam("u"), _A.c.domain == bindparam("d")).order_by(_D.c.id)
)
_E = EmergencyMapping.__table__
_SELECT_EMERGENCY = select(_E.c.region, _E.c.number, _E.c.destination, _E.c.description)


def _peer(row) -> Peer:  # noqa: ANN001 - a Row of _SELECT_PEERS
    return Peer(
        ip=normalise_ip(row.ip) or row.ip.lower(), description=row.description or "", tenant=row.tenant or "",
        carrier_name=row.carrier_name or "", originator=(row.originator or "").strip(),
        prefix=(row.prefix or "").strip(), strip=row.strip or 0, tags=row.tags or "",
        billing_id=row.billing_id or "", call_limit=row.call_limit or 0, blocked=bool(row.blocked),
        msteams=bool(row.msteams), prepaid=bool(row.prepaid), enum_lookup=bool(row.enum_lookup),
        transit=bool(row.transit),
    )


def load_lcr(conn) -> LcrTable:  # noqa: ANN001 - a SQLAlchemy Connection
    """Read the four LCR tables into one :class:`LcrTable` (a gateway or route whose carrier
    is gone -- a concurrent delete -- is left out)."""
    rules: dict[int, list[Rule]] = {}
    for r in conn.execute(_SELECT_RULES):
        rules.setdefault(r.gateway_id, []).append(Rule(
            id=r.id, prefix=(r.prefix or "").strip(), strip=r.strip or 0, prepend=(r.prepend or "").strip(),
            min_length=r.min_length or 0, max_length=r.max_length or 0))
    gateways: dict[int, list[Gateway]] = {}
    for g in conn.execute(_SELECT_GATEWAYS):
        gateways.setdefault(g.carrier_id, []).append(Gateway(
            id=g.id, name=g.name or "", carrier_id=g.carrier_id, transport=(g.transport or "udp").lower(),
            host=g.ip.lower(), port=g.port or 5060, rules=tuple(sorted(rules.get(g.id, ()), key=rule_order))))
    carriers = {
        c.id: Carrier(id=c.id, name=c.name or "", gateways=tuple(gateways.get(c.id, ())))
        for c in conn.execute(_SELECT_CARRIERS)
    }
    routes = [
        Route(id=r.id, prefix=(r.prefix or "").strip(), originator=(r.originator or "").strip(),
              priority=r.priority if r.priority is not None else 10, carrier=carriers[r.carrier_id])
        for r in conn.execute(_SELECT_ROUTES) if r.carrier_id in carriers
    ]
    # a gateway of a carrier without routes still marks incoming PSTN calls (the guide: gateways
    # for incoming traffic only are provisioned without a route)
    return LcrTable.build(routes, [g for c in carriers.values() for g in c.gateways])


class RoutingData(FeedFollower):
    """Cached routing data, kept fresh by the change feed (see the module's text)."""

    name = "routing data"

    def __init__(
        self,
        session_factory: Callable[[], Session],
        *,
        capacity: int = 100_000,
        refresh_interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        feed: ChangeFeed | None = None,
        emergency_max_age: float = 60.0,
    ) -> None:
        super().__init__(feed if feed is not None else ChangeFeed(session_factory), refresh_interval, clock)
        self._engine: Engine = engine_of(session_factory)
        self._peers: dict[str, Peer] | None = None
        self._lcr: LcrTable | None = None
        self._emergency: dict[tuple[str, str], str] | None = None
        self._emergency_at = 0.0
        self.emergency_max_age = emergency_max_age
        self._diversions = _LRU(capacity)
        self.loads = 0  # table loads and diversion misses, for tests and stats

    # -- look-ups -----------------------------------------------------------------------

    def trusted_peer(self, ip: str) -> Peer | None:
        """The trusted peer at source address ``ip`` (blocked ones too: check ``.blocked``)."""
        self._maybe_refresh()
        key = normalise_ip(ip)
        if key is None:
            return None
        peers = self._peers
        if peers is None:
            with self._engine.connect() as conn:
                loaded = [_peer(r) for r in conn.execute(_SELECT_PEERS)]
            peers = self._peers = {p.ip: p for p in loaded}
            self.loads += 1
        return peers.get(key)

    def lcr(self) -> LcrTable:
        """The whole LCR table, one consistent snapshot (immutable: keep it for a call)."""
        self._maybe_refresh()
        table = self._lcr
        if table is None:
            with self._engine.connect() as conn:
                table = self._lcr = load_lcr(conn)
            self.loads += 1
        return table

    def routes(self, originator: str = "") -> tuple[Route, ...]:
        """The routes of ``originator`` exactly (``""``: the default routes)."""
        return self.lcr().for_originator(originator)

    def diversions(self, username: str, domain: str) -> tuple[Diversion, ...]:
        """The call diversions of account ``username@domain`` (empty: none, or no account)."""
        self._maybe_refresh()
        key = (username, domain.lower())
        cached = self._diversions.get(key)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        with self._engine.connect() as conn:
            rows = conn.execute(_SELECT_DIVERSIONS, {"u": key[0], "d": key[1]}).all()
        self.loads += 1
        found = tuple(Diversion(r.condition.upper(), r.uri) for r in rows)
        self._diversions.put(key, found)
        return found

    def emergency(self, region: str, number: str) -> str | None:
        """The destination of emergency ``number`` in ``region`` (exact region), or None."""
        self._maybe_refresh()
        table = self._emergency
        if table is None or self._clock() - self._emergency_at > self.emergency_max_age:
            with self._engine.connect() as conn:
                table = {(r.region, r.number): r.destination for r in conn.execute(_SELECT_EMERGENCY)}
            self._emergency, self._emergency_at = table, self._clock()
            self.loads += 1
        return table.get((region, number))

    def emergency_mappings(self) -> tuple[Mapping, ...]:
        """Every emergency mapping (for diagnostics; the look-up is :meth:`emergency`)."""
        with self._engine.connect() as conn:
            return tuple(Mapping(r.region, r.number, r.destination, r.description or "")
                         for r in conn.execute(_SELECT_EMERGENCY))

    def warm(self) -> int:
        """Load the peer, LCR and emergency tables now (the first call should not pay)."""
        self.trusted_peer("0.0.0.0")
        self.lcr()
        self.emergency("", "")
        return len(self._peers or ()) + len(self.lcr().routes)

    # -- freshness ------------------------------------------------------------------------

    def apply(self, changes: list[Change]) -> None:
        """Drop what ``changes`` name (for a caller that polls the feed itself)."""
        accounts: set[str] = set()
        for change in changes:
            if change.topic == TOPIC_TRUSTED_PEER:
                self._peers = None
            elif change.topic == TOPIC_LCR:
                self._lcr = None
            elif change.topic == TOPIC_EMERGENCY:
                self._emergency = None
            elif change.topic == TOPIC_SIP_ACCOUNT:
                if change.key:
                    accounts.add(change.key.lower())
                else:
                    self._diversions.clear()
            elif change.topic == TOPIC_SIP_DOMAIN:
                self._diversions.clear()
        if accounts:
            self._diversions.drop(accounts)
