"""SipPort call lists and call statistics (``getCalls``, ``getCallStatistics``), answered
from the accounting table the proxy writes (:class:`ngnpro.models.runtime.AccountingRecord`).

A subscriber's placed calls are the records whose ``caller`` is its address, its received
calls those whose ``callee`` is.  The account is looked up in the caller's scope first, so a
reseller sees the calls of its own subscribers only.  Dates on the wire are Unix epoch
seconds (API.md 2.4); in the database, naive UTC.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

from spyne import rpc
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ngnpro import sip_types as t
from ngnpro.models.runtime import AccountingRecord, MediaSession
from ngnpro.sip_accounts import find_account
from ngnpro.soap import NS_SIP, PortService, call_context
from ngnpro.soap.context import Scope
from ngnpro.soap.types import NS_TYPES, Array, ComplexModel, Double, Integer, StringArray, Unicode

DEFAULT_LIMIT = 50
MAX_LIMIT = 5000
#: epoch seconds accepted in a query (to 2100): a larger number is a typo, not a date
MAX_EPOCH = 4102444800


def _struct(name: str, members: list[tuple[str, Any]]) -> type:
    return type(name, (ComplexModel,), {"__namespace__": NS_TYPES, "__type_name__": name, "_type_info": members})


CallQuery = _struct("CallQuery", [("fromDate", Integer), ("toDate", Integer), ("limit", Integer)])
CallsQuery = _struct("CallsQuery", [("placed", CallQuery), ("received", CallQuery)])
CallRecord = _struct("CallRecord", [
    ("fromURI", Unicode), ("toURI", Unicode), ("fromHeader", Unicode), ("sessionId", Unicode),
    ("fromTag", Unicode), ("toTag", Unicode), ("applicationTypes", StringArray), ("startTime", Integer),
    ("stopTime", Integer), ("duration", Integer), ("status", Integer), ("price", Double), ("proxyIP", Unicode),
])
CallRecords = _struct("CallRecords", [("placed", Array(CallRecord)), ("received", Array(CallRecord))])
CallStatistic = _struct("CallStatistic", [("calls", Integer), ("price", Double)])
CallStatistics = _struct("CallStatistics", [("placed", CallStatistic), ("received", CallStatistic)])

#: query member -> the accounting column naming the account in that direction
DIRECTIONS = (("placed", AccountingRecord.caller), ("received", AccountingRecord.callee))


def epoch(value: _dt.datetime | None) -> int:
    """Naive-UTC ``value`` as Unix seconds; 0 for none (a call still in progress)."""
    return int(value.replace(tzinfo=_dt.UTC).timestamp()) if value else 0


def _when(value: int | None, field: str) -> _dt.datetime | None:
    seconds = t.integer(value, field, 0, MAX_EPOCH)
    return _dt.datetime.fromtimestamp(seconds, _dt.UTC).replace(tzinfo=None) if seconds else None


def _window(q: Any, field: str, column: Any) -> tuple[list[Any], int]:
    """The WHERE clauses of a CallQuery (``fromDate``/``toDate``: 0 = open) and its limit."""
    start, stop = _when(q.fromDate, f"{field}.fromDate"), _when(q.toDate, f"{field}.toDate")
    if start and stop and stop < start:
        raise t.invalid(f"{field}.toDate", "is before fromDate")
    limit = t.integer(q.limit, f"{field}.limit", 0, MAX_LIMIT) or DEFAULT_LIMIT
    clauses = []
    if start:
        clauses.append(column >= start)
    if stop:
        clauses.append(column <= stop)
    return clauses, limit


def _media_types(session: Session, rows: list[AccountingRecord]) -> dict[tuple[str, str], list[str]]:
    """Media types per (call id, from tag), from mediaproxy's session summaries."""
    call_ids = sorted({r.call_id for r in rows})
    found: dict[tuple[str, str], list[str]] = {}
    for start in range(0, len(call_ids), 500):
        stmt = select(MediaSession.call_id, MediaSession.from_tag, MediaSession.streams).where(
            MediaSession.call_id.in_(call_ids[start:start + 500]))
        for call_id, from_tag, streams in session.execute(stmt):
            try:
                kinds = [s.get("media_type", "") for s in json.loads(streams or "[]") if isinstance(s, dict)]
            except (ValueError, AttributeError):
                kinds = []
            types = found.setdefault((call_id, from_tag), [])
            types.extend(k for k in kinds if k and k not in types)
    return found


def _record(row: AccountingRecord, media: dict[tuple[str, str], list[str]]) -> dict[str, Any]:
    types = media.get((row.call_id, row.from_tag)) or ["audio"]
    return {
        "fromURI": row.from_uri, "toURI": row.to_uri, "fromHeader": row.from_uri, "sessionId": row.call_id,
        "fromTag": row.from_tag, "toTag": row.to_tag, "applicationTypes": [", ".join(types)],
        "startTime": epoch(row.start_time), "stopTime": epoch(row.stop_time), "duration": int(row.duration or 0),
        "status": int(row.status or 0), "price": float(row.price or 0), "proxyIP": row.proxy,
    }


def get_calls(session: Session, scope: Scope, sip_id: t.SipId | None, query: Any) -> dict[str, list]:
    """The account's newest calls each way asked for, newest first; a direction the query
    leaves out comes back as an empty list."""
    account = find_account(session, scope, sip_id)
    out: dict[str, list] = {"placed": [], "received": []}
    for name, column in DIRECTIONS:
        q = getattr(query, name, None) if query is not None else None
        if q is None:
            continue
        clauses, limit = _window(q, f"query.{name}", AccountingRecord.start_time)
        rows = list(session.scalars(
            select(AccountingRecord).where(column == account.aor, AccountingRecord.method == "INVITE", *clauses)
            .order_by(AccountingRecord.start_time.desc(), AccountingRecord.id.desc()).limit(limit)
        ))
        media = _media_types(session, rows) if rows else {}
        out[name] = [_record(r, media) for r in rows]
    return out


def get_call_statistics(session: Session, scope: Scope, sip_id: t.SipId | None, query: Any) -> dict[str, dict]:
    """``{calls, price}`` each way asked for: every accounted call in the query's window
    (``limit`` does not apply) and what they cost; zeros for a direction left out."""
    account = find_account(session, scope, sip_id)
    out = {"placed": {"calls": 0, "price": 0.0}, "received": {"calls": 0, "price": 0.0}}
    for name, column in DIRECTIONS:
        q = getattr(query, name, None) if query is not None else None
        if q is None:
            continue
        clauses, _ = _window(q, f"query.{name}", AccountingRecord.start_time)
        calls, price = session.execute(
            select(func.count(AccountingRecord.id), func.coalesce(func.sum(AccountingRecord.price), 0))
            .where(column == account.aor, AccountingRecord.method == "INVITE", *clauses)
        ).one()
        out[name] = {"calls": int(calls), "price": float(price)}
    return out


class SipCallsPort(PortService):
    """SipPort: call lists and statistics."""

    __port_namespace__ = NS_SIP

    @rpc(t.SipId, CallsQuery, _returns=CallRecords)
    def getCalls(ctx, sipId, query):  # noqa: N802, N803, N805 - wire names
        c = call_context(ctx)
        return get_calls(c.session, c.scope, sipId, query)

    @rpc(t.SipId, CallsQuery, _returns=CallStatistics)
    def getCallStatistics(ctx, sipId, query):  # noqa: N802, N803, N805
        c = call_context(ctx)
        return get_call_statistics(c.session, c.scope, sipId, query)
