"""The data enumdns serves, read from the shared database and kept fresh by the change feed.

* Zones (ENUM ranges, DnsPort zones with all their records, and the configured ENUM TLDs)
  are few and small: all of them live in memory.
* Numbers can be millions: a bounded cache maps ``number@tld`` to the number's mappings.
  At start it is filled with every number when they fit (then a number missing from the
  cache is known not to exist, with no query), otherwise a miss costs one indexed query.
* :class:`ngnpro.models.changes.ChangeFeed` names what changed (``number@tld``,
  ``prefix@tld``, a zone name); only those entries are re-read, never whole tables.

Every zone has a generation counter; the packet cache in front of the answer builder keys
its entries to it, so a change reaches the wire on the next query.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable

import dns.name
from sqlalchemy import Engine, bindparam, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ngnpro.models.changes import (
    TOPIC_DNS_ZONE,
    TOPIC_ENUM_NUMBER,
    TOPIC_ENUM_RANGE,
    Change,
    ChangeFeed,
)
from ngnpro.models.e164 import EnumMapping, EnumNumber, EnumRange
from ngnpro.models.zones import DnsRecord, DnsZone

from .zone import (
    EnumZone,
    Mapping,
    RecordZone,
    Zone,
    enum_origin,
    mailbox_name,
    make_ns,
    make_soa,
    record_rdata,
)

log = logging.getLogger("enumdns.store")

_NUMBER_QUERY = (
    select(EnumNumber.id, EnumMapping.type, EnumMapping.mapto, EnumMapping.ttl, EnumMapping.priority)
    .outerjoin(EnumMapping, EnumMapping.number_id == EnumNumber.id)
    .where(EnumNumber.number == bindparam("n"), EnumNumber.tld == bindparam("t"))
    .order_by(EnumMapping.priority, EnumMapping.id)
)
_NUMBERS_QUERY = (
    select(EnumNumber.number, EnumMapping.type, EnumMapping.mapto, EnumMapping.ttl, EnumMapping.priority)
    .outerjoin(EnumMapping, EnumMapping.number_id == EnumNumber.id)
    .where(EnumNumber.tld == bindparam("t"))
    .order_by(EnumNumber.number, EnumMapping.priority, EnumMapping.id)
)
_BELOW_QUERY = (
    select(EnumNumber.id)
    .where(EnumNumber.tld == bindparam("t"), EnumNumber.number > bindparam("lo"),
           EnumNumber.number < bindparam("hi"))
    .limit(1)
)
_RANGE_COLUMNS = (EnumRange.id, EnumRange.prefix, EnumRange.tld, EnumRange.ttl, EnumRange.serial,
                  EnumRange.nameservers)


class StoreError(Exception):
    """The database could not be read; the query gets SERVFAIL and the store retries."""


class Generation:
    """A counter packet-cache entries can be checked against (the set of zones itself)."""

    def __init__(self) -> None:
        self.gen = 0


class Store:
    """Zones and numbers for the answer builder (``find_zone``), fed from SQL."""

    def __init__(self, engine: Engine, session_factory: Callable[[], Session], enum_tlds: Iterable[str],
                 nameservers: Iterable[str] = (), soa_email: str = "hostmaster.localhost",
                 capacity: int = 200_000) -> None:
        self.engine = engine
        self.session_factory = session_factory
        self.enum_tlds = [t.lower().rstrip(".") for t in enum_tlds]
        self.nameservers = list(nameservers)
        self.rname = mailbox_name(soa_email)
        self.capacity = capacity
        self.lock = threading.RLock()
        self.zoneset = Generation()
        self.zones: dict[dns.name.Name, Zone] = {}
        self.zone_keys: dict[bytes, Zone] = {}  # the same, by lower-case wire form
        self.zone_depth = 0  # labels in the deepest origin
        self._enum: dict[dns.name.Name, EnumZone] = {}
        self._dns: dict[dns.name.Name, RecordZone] = {}
        self._numbers: OrderedDict[str, tuple[Mapping, ...] | None] = OrderedDict()
        self._complete = False  # every number is in _numbers: a miss means "no such number"
        self._below: OrderedDict[str, bool] = OrderedDict()
        self._conn = None
        self._prepared: dict[int, tuple[str, list[str] | None, dict]] = {}
        self.feed: ChangeFeed | None = None

    # ---------------------------------------------------------------- loading
    def load(self, preload: bool = True) -> None:
        """Read every zone (and, if they fit, every number); start following changes."""
        self.feed = ChangeFeed(self.session_factory)  # before reading: nothing slips through
        with self.lock:
            self._load_ranges()
            self._load_dns_zones()
            self._rebuild()
            if preload:
                self._preload_numbers()

    def _load_ranges(self) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_RANGE_COLUMNS)).all()
        self._enum = {}
        for row in rows:
            self._add_range(row)

    def _add_range(self, row) -> EnumZone | None:  # noqa: ANN001
        try:
            origin = enum_origin(row.prefix, row.tld)
        except Exception as exc:  # noqa: BLE001 - a bad row must not stop the server
            log.warning("enum range %s@%s skipped: %s", row.prefix, row.tld, exc)
            return None
        zone = self._enum_zone(origin, row.prefix, row.tld, row.ttl, row.serial, row.nameservers)
        zone.range_id = row.id
        self._enum[origin] = zone
        return zone

    def _enum_zone(self, origin: dns.name.Name, prefix: str, tld: str, ttl: int, serial: int,
                   nameservers: str) -> EnumZone:
        hosts = (nameservers or "").split() or self.nameservers
        mname = dns.name.from_text(hosts[0].rstrip(".") + ".") if hosts else origin
        soa = make_soa(origin, mname, self.rname, serial, 10800, 3600, 1209600, ttl, ttl)
        zone = EnumZone(origin, soa, make_ns(hosts, ttl), sys.intern(tld), prefix, ttl,
                        self.numbers, self.has_numbers_below)
        zone.range_id = None
        return zone

    def _load_dns_zones(self, name: str | None = None) -> None:
        with self.engine.connect() as conn:
            stmt = select(DnsZone)
            if name is not None:
                stmt = stmt.where(func.lower(DnsZone.name) == name)
            zones = [row[0] for row in Session(bind=conn).execute(stmt).all()]
            stmt = select(DnsRecord.zone_id, DnsRecord.name, DnsRecord.type, DnsRecord.value,
                          DnsRecord.ttl, DnsRecord.priority).order_by(DnsRecord.zone_id, DnsRecord.id)
            if name is not None:
                stmt = stmt.where(DnsRecord.zone_id.in_([z.id for z in zones]))
            rows = conn.execute(stmt).all() if zones else []
        by_zone: dict[int, list] = {}
        for r in rows:
            by_zone.setdefault(r.zone_id, []).append(r)
        if name is None:
            self._dns = {}
        for z in zones:
            zone = self._record_zone(z, by_zone.get(z.id, []))
            if zone is not None:
                self._dns[zone.origin] = zone

    def _record_zone(self, z: DnsZone, records: list) -> RecordZone | None:
        try:
            origin = dns.name.from_text(z.name.rstrip(".") + ".")
            hosts = (z.nameservers or "").split() or self.nameservers
            mname = dns.name.from_text(hosts[0].rstrip(".") + ".") if hosts else origin
            rname = mailbox_name(z.email) if z.email else self.rname
            soa = make_soa(origin, mname, rname, z.serial, z.refresh, z.retry, z.expire, z.minimum, z.ttl)
            zone = RecordZone(origin, soa, make_ns(hosts, z.ttl))
        except Exception as exc:  # noqa: BLE001
            log.warning("dns zone %r skipped: %s", z.name, exc)
            return None
        for r in records:
            try:
                rel = (r.name or "").strip().rstrip(".")
                owner = dns.name.from_text(rel, origin) if rel and rel != "@" else origin
                if not owner.is_subdomain(origin):
                    raise ValueError(f"{owner} is outside the zone")
                zone.add(owner, record_rdata(r.type, r.value, r.priority or 0, origin), r.ttl or z.ttl)
            except Exception as exc:  # noqa: BLE001 - one bad record must not hide the zone
                log.warning("zone %s: record %s %s %r skipped: %s", z.name, r.name, r.type, r.value, exc)
        return zone

    def _rebuild(self) -> None:
        """Recompute the zone map after zones came or went; every cached answer is stale."""
        zones: dict[dns.name.Name, Zone] = {}
        for tld in self.enum_tlds:
            origin = dns.name.from_text(tld + ".")
            zones[origin] = self._enum_zone(origin, "", tld, 3600, 1, "")
        zones.update(self._enum)
        zones.update(self._dns)
        for old in self.zones.values():
            old.gen += 1
        self.zones = zones
        self.zone_keys = {z.key: z for z in zones.values()}
        self.zone_depth = max((len(z.origin) for z in zones.values()), default=0)
        self.zoneset.gen += 1

    def _preload_numbers(self) -> None:
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count(EnumNumber.id))).scalar() or 0
            stmt = (
                select(EnumNumber.id, EnumNumber.number, EnumNumber.tld, EnumMapping.type,
                       EnumMapping.mapto, EnumMapping.ttl, EnumMapping.priority)
                .outerjoin(EnumMapping, EnumMapping.number_id == EnumNumber.id)
                .order_by(EnumNumber.id, EnumMapping.priority, EnumMapping.id)
            )
            result = conn.execution_options(yield_per=20000).execute(stmt)
            numbers = self._numbers
            numbers.clear()
            last_id, key, maps = None, "", []
            for row in result:
                if row.id != last_id:
                    if last_id is not None:
                        numbers[key] = tuple(maps)
                        if len(numbers) >= self.capacity:
                            break
                    last_id, key, maps = row.id, f"{row.number}@{row.tld.lower()}", []
                if row.type is not None:
                    maps.append((sys.intern(row.type), row.mapto, row.ttl, row.priority))
            else:
                if last_id is not None:
                    numbers[key] = tuple(maps)
            result.close()
        self._complete = total <= self.capacity and len(numbers) >= total
        log.info("%d of %d numbers in memory%s", len(numbers), total,
                 " (all)" if self._complete else "; the rest are read on demand")

    # ---------------------------------------------------------------- lookups
    def find_zone(self, qname: dns.name.Name) -> Zone | None:
        """The deepest of our zones that encloses ``qname``."""
        zones = self.zones
        name = qname
        while True:
            zone = zones.get(name)
            if zone is not None:
                return zone
            if len(name) <= 1:
                return None
            name = name.parent()

    def numbers(self, number: str, tld: str) -> tuple[Mapping, ...] | None:
        """The mappings of a number, () if it has none, None if it does not exist."""
        key = f"{number}@{tld.lower()}"
        try:
            return self._numbers[key]
        except KeyError:
            if self._complete:
                return None
        value = self._read_number(number, tld)
        self._remember(key, value)
        return value

    def has_numbers_below(self, digits: str, tld: str) -> bool:
        """Whether a number starts with ``digits`` (so the name is an empty non-terminal)."""
        key = f"{digits}@{tld.lower()}"
        hit = self._below.get(key)
        if hit is None:
            rows = self._fast_query(_BELOW_QUERY, t=tld, lo=digits, hi=digits + ":")
            hit = self._below[key] = bool(rows)
            if len(self._below) > 10000:
                self._below.popitem(last=False)
        return hit

    def _read_number(self, number: str, tld: str) -> tuple[Mapping, ...] | None:
        rows = self._fast_query(_NUMBER_QUERY, n=number, t=tld)
        if not rows:
            return None
        return tuple((sys.intern(r[1]), r[2], r[3], r[4]) for r in rows if r[1] is not None)

    def _fast_query(self, stmt, **params) -> list[tuple]:  # noqa: ANN001
        """:meth:`_query` for the per-miss lookups, on the driver's own cursor: the SQL is
        compiled once per dialect, which cuts a lookup to a fraction of the cost (it is what
        a cache miss costs when the numbers do not all fit in memory)."""
        prepared = self._prepared.get(id(stmt))
        if prepared is None:
            compiled = stmt.compile(dialect=self.engine.dialect)
            order = list(compiled.positiontup) if compiled.positional else None
            prepared = self._prepared[id(stmt)] = (str(compiled), order, dict(compiled.params))
        sql, order, defaults = prepared
        values = {**defaults, **params}
        args = tuple(values[k] for k in order) if order is not None else values
        try:
            if self._conn is None:
                self._conn = self.engine.connect()
            dbapi = self._conn.connection.dbapi_connection
            cursor = dbapi.cursor()
            try:
                cursor.execute(sql, args)
                return list(cursor.fetchall())
            finally:
                cursor.close()
                dbapi.rollback()  # end the snapshot: the next read sees new commits
        except (SQLAlchemyError, self.engine.dialect.loaded_dbapi.Error) as exc:
            self._drop_connection()
            raise StoreError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:  # noqa: BLE001 - it is being thrown away
                pass
            self._conn = None

    def _remember(self, key: str, value: tuple[Mapping, ...] | None) -> None:
        numbers = self._numbers
        if value is None and self._complete:
            numbers.pop(key, None)
            return
        numbers[key] = value
        if len(numbers) > self.capacity:
            self._complete = False  # from now on a miss must ask the database
            numbers.popitem(last=False)

    def _query(self, stmt, **params) -> list:  # noqa: ANN001
        """One read on a kept-open connection, its transaction ended at once so the next
        read sees newly committed rows (a SQLite WAL snapshot otherwise stays old)."""
        try:
            if self._conn is None:
                self._conn = self.engine.connect()
            try:
                return self._conn.execute(stmt, params).all()
            finally:
                self._conn.rollback()
        except SQLAlchemyError as exc:
            self._drop_connection()
            raise StoreError(str(exc).splitlines()[0]) from exc

    # ---------------------------------------------------------------- changes
    def poll(self) -> int:
        """Apply the changes committed since the last poll; returns how many there were."""
        if self.feed is None:
            return 0
        changes = self.feed.poll()
        if changes:
            with self.lock:
                self.apply(changes)
        return len(changes)

    def apply(self, changes: Iterable[Change]) -> None:
        zones_changed = False
        numbers: list[str] = []
        for change in changes:
            log.debug("change %s %r", change.topic, change.key)
            if change.topic == TOPIC_ENUM_NUMBER:
                numbers.append(change.key)
            elif change.topic == TOPIC_ENUM_RANGE:
                zones_changed |= self._range_changed(change.key)
            elif change.topic == TOPIC_DNS_ZONE:
                zones_changed |= self._dns_zone_changed(change.key)
        if zones_changed:
            self._rebuild()
        if numbers:
            self._numbers_changed(numbers)

    def _numbers_changed(self, keys: list[str]) -> None:
        """Re-read just the changed numbers, a few hundred per query (deleting a range logs
        one change per number it held)."""
        self._below.clear()
        wanted: dict[str, set[str]] = {}
        for key in keys:
            number, _, tld = key.partition("@")
            if not number.isdigit():
                log.info("number change %r: dropping the number cache", key)
                self._numbers.clear()
                self._complete = False
                for zone in self.zones.values():
                    zone.gen += 1
                return
            tlds = [tld] if tld else sorted({z.tld for z in self.zones.values() if isinstance(z, EnumZone)})
            for t in tlds:
                wanted.setdefault(t, set()).add(number)
        touched: dict[int, Zone] = {}
        for tld, numbers in wanted.items():
            batch = sorted(numbers)
            for i in range(0, len(batch), 500):
                chunk = batch[i:i + 500]
                found: dict[str, list[Mapping]] = {}
                for r in self._query(_NUMBERS_QUERY.where(EnumNumber.number.in_(chunk)), t=tld):
                    maps = found.setdefault(r.number, [])
                    if r.type is not None:
                        maps.append((sys.intern(r.type), r.mapto, r.ttl, r.priority))
                for number in chunk:
                    maps = found.get(number)
                    self._remember(f"{number}@{tld}", None if maps is None else tuple(maps))
                    zone = self.find_zone(enum_origin(number, tld))
                    if zone is not None:
                        touched[id(zone)] = zone
        for zone in touched.values():
            zone.gen += 1
            if isinstance(zone, EnumZone) and zone.range_id is not None:
                self._refresh_serial(zone)

    def _refresh_serial(self, zone: EnumZone) -> None:
        """A number change bumps its range's serial: pick the new SOA up (one row)."""
        rows = self._query(select(*_RANGE_COLUMNS).where(EnumRange.id == zone.range_id))
        if rows and rows[0].serial != zone.serial:
            new = self._add_range(rows[0])
            if new is not None:
                self.zones[new.origin] = new
                self.zone_keys[new.key] = new
                zone.gen += 1

    def _range_changed(self, key: str) -> bool:
        prefix, _, tld = key.partition("@")
        if not prefix.isdigit() or not tld:
            log.info("range change %r: re-reading the ranges", key)
            self._load_ranges()
            return True
        rows = self._query(select(*_RANGE_COLUMNS).where(EnumRange.prefix == prefix, EnumRange.tld == tld))
        origin = enum_origin(prefix, tld)
        if rows:
            self._add_range(rows[0])
        elif self._enum.pop(origin, None) is not None:
            # the range's numbers went with it (ON DELETE CASCADE)
            stale = [k for k in self._numbers if k.startswith(prefix) and k.endswith("@" + tld)]
            for k in stale:
                del self._numbers[k]
        return True

    def _dns_zone_changed(self, key: str) -> bool:
        name = key.strip().rstrip(".").lower()
        if not name:
            self._load_dns_zones()
            return True
        try:
            origin = dns.name.from_text(name + ".")
        except Exception:  # noqa: BLE001
            self._load_dns_zones()
            return True
        before = self._dns.pop(origin, None)
        self._load_dns_zones(name)
        if origin not in self._dns and before is None:
            # not a zone name: a record's name, perhaps; reload the zone that holds it
            holder = next((z for o, z in self._dns.items() if origin.is_subdomain(o)), None)
            if holder is not None:
                self._load_dns_zones(holder.origin.to_text(omit_final_dot=True).lower())
        return True
