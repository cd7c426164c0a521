"""SipPort subscriber settings: call diversions, do-not-disturb (accept rules), reject
members, barring prefixes, phonebook and the registered devices (location table).

These are what CDRTool's SIP settings page reads and writes for one subscriber at a time;
each setter replaces the whole list it is given (API.md 3.1), except where the client is
known to send a partial picture (API.md 7: the DND toggle re-sends accept rules without
``days`` or without ``persistent`` -- then the persistent rules are kept).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Iterable
from typing import Any

from spyne import Array, Unicode, rpc
from sqlalchemy import select
from sqlalchemy.orm import Session

from ngnpro import sip_types as t
from ngnpro.models import sip as m
from ngnpro.models.runtime import Location
from ngnpro.sip_accounts import find_account, touch
from ngnpro.soap import NS_SIP, PortService, call_context
from ngnpro.soap.context import Scope
from ngnpro.soap.faults import INVALID_VALUE, NO_DATA, NGNProError
from ngnpro.soap.types import Range, StringArray

CONDITIONS = ("FUNC", "FNOL", "FBUS", "FNOA", "FUNV")
VOICEMAILBOX = "<voice-mailbox>"
SPECIAL_GROUPS = ("everybody", "nobody")

_URI = re.compile(r"^(sips?|tel):[^\s<>\"]+$", re.IGNORECASE)
_TIME = re.compile(r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")


def uri(value: str | None, field: str, default_scheme: str = "sip:") -> str:
    """A SIP (or tel) URI; a bare ``user@host`` gets ``sip:``."""
    v = (value or "").strip()
    if not v:
        raise t.invalid(field, "missing")
    if ":" not in v.split("@")[0]:
        v = default_scheme + v
    if len(v) > 255 or not _URI.match(v):
        raise t.invalid(field, f"{v!r} is not a SIP URI")
    return v


def _replace(
    current: list[Any], key: Callable[[Any], str], wanted: Iterable[str], make: Callable[[str], Any]
) -> list[Any]:
    """Rows for ``wanted`` keys: existing rows kept, missing ones made (never a delete and an
    insert of the same key, which the unique constraints would refuse inside one flush)."""
    have = {key(r): r for r in current}
    out: list[Any] = []
    seen: set[str] = set()
    for k in wanted:
        if k in seen:
            continue
        seen.add(k)
        out.append(have.get(k) or make(k))
    return out


# --- call diversions ----------------------------------------------------------------------


def diversion_target(value: str, field: str) -> str:
    if value.strip().lower() in (VOICEMAILBOX, "voice-mailbox"):
        return VOICEMAILBOX
    return uri(value, field)


def set_call_diversions(session: Session, scope: Scope, sip_id: t.SipId | None, d: t.CallDiversions | None) -> None:
    """Replace the diversions: absent members, the ``nocondition`` sentinel and an empty
    struct all mean "no diversion"."""
    account = find_account(session, scope, sip_id)
    wanted: dict[str, str] = {}
    if d is not None and not d.nocondition:
        for cond in CONDITIONS:
            value = getattr(d, cond)
            if value not in (None, ""):
                wanted[cond] = diversion_target(str(value), f"diversions.{cond}")
    have = {r.condition: r for r in account.diversions}
    rows = []
    for cond, target in wanted.items():
        row = have.get(cond) or m.CallDiversion(condition=cond, uri=target)
        row.uri = target
        rows.append(row)
    account.diversions = rows
    touch(session, account)


def get_call_diversions(session: Session, scope: Scope, sip_id: t.SipId | None) -> t.CallDiversions:
    """Every condition, ``''`` when not diverted: an all-absent struct would go out empty and
    PHP would decode it as a string, whose members the settings page then reads."""
    account = find_account(session, scope, sip_id)
    found = {r.condition: r.uri for r in account.diversions}
    return t.CallDiversions(**{cond: found.get(cond, "") for cond in CONDITIONS})


# --- accept rules (do not disturb) --------------------------------------------------------


def _rule_groups(values: list[str] | None, field: str) -> str:
    names: list[str] = []
    for i, g in enumerate(t.string_list(values) or []):
        name = str(g).strip().lower()
        if name not in SPECIAL_GROUPS:
            name = t.group_name(name, f"{field}[{i}]")
        if name not in names:
            names.append(name)
    return ",".join(names)


def _hhmm(value: str | None, field: str) -> str:
    v = (value or "").strip()
    if not _TIME.match(v):
        raise t.invalid(field, f"{v!r} is not a HH:MM time")
    return v


def set_accept_rules(session: Session, scope: Scope, sip_id: t.SipId | None, rules: t.AcceptRules | None) -> None:
    account = find_account(session, scope, sip_id)
    rules = rules or t.AcceptRules()
    persistent = list(rules.persistent) if rules.persistent is not None else None
    # the DND toggle's quirks: no persistent list, or items whose days were lost -> keep them
    keep_persistent = persistent is None or any(p is not None and p.days is None for p in persistent)
    new_rows: list[m.AcceptRule] = []
    if keep_persistent:
        new_rows.extend(r for r in account.accept_rules if r.persistent)
    else:
        for i, p in enumerate(x for x in persistent if x is not None):
            f = f"rules.persistent[{i}]"
            new_rows.append(m.AcceptRule(
                persistent=True, start=_hhmm(p.start, f + ".start"), stop=_hhmm(p.stop, f + ".stop"),
                days=t.integer(p.days, f + ".days", 0, 127), groups=_rule_groups(p.groups, f + ".groups"),
            ))
    temporary = rules.temporary
    if temporary is None:
        new_rows.extend(r for r in account.accept_rules if not r.persistent)
    else:
        groups = _rule_groups(temporary.groups, "rules.temporary.groups")
        duration = t.integer(temporary.duration, "rules.temporary.duration", 0, 525600)
        if groups:
            new_rows.append(m.AcceptRule(persistent=False, groups=groups, duration=duration, set_at=m.utcnow()))
    account.accept_rules = new_rows
    touch(session, account)


def _split(groups: str) -> list[str]:
    return [g for g in groups.split(",") if g]


def temporary_minutes_left(rule: m.AcceptRule, now: _dt.datetime) -> int | None:
    """Minutes a temporary rule still runs (0 = until removed), None once it expired."""
    if not rule.duration:
        return 0
    left = rule.set_at + _dt.timedelta(minutes=rule.duration) - now
    seconds = left.total_seconds()
    return -int(-seconds // 60) if seconds > 0 else None


def get_accept_rules(session: Session, scope: Scope, sip_id: t.SipId | None) -> t.AcceptRulesInfo:
    account = find_account(session, scope, sip_id)
    now = m.utcnow()
    persistent = [
        t.PersistentAcceptRule(start=r.start, stop=r.stop, groups=_split(r.groups), days=r.days)
        for r in account.accept_rules if r.persistent
    ]
    temporary = t.TemporaryAcceptRule(groups=[], duration=0)
    for r in account.accept_rules:
        left = None if r.persistent else temporary_minutes_left(r, now)
        if left is not None:
            temporary = t.TemporaryAcceptRule(groups=_split(r.groups), duration=left)
    groups = session.execute(
        select(m.PhonebookEntry.group).where(m.PhonebookEntry.account_id == account.id, m.PhonebookEntry.group != "")
        .distinct()
    ).scalars().all()
    return t.AcceptRulesInfo(
        rules=t.AcceptRules(persistent=persistent, temporary=temporary), nonEmptyGroups=sorted(groups)
    )


# --- reject members and barring prefixes --------------------------------------------------


def set_reject_members(session: Session, scope: Scope, sip_id: t.SipId | None, members: list[str] | None) -> None:
    account = find_account(session, scope, sip_id)
    wanted = [uri(v, f"members[{i}]") for i, v in enumerate(t.string_list(members) or [])]
    account.reject_members = _replace(
        account.reject_members, lambda r: r.uri, wanted, lambda u: m.RejectMember(uri=u)
    )
    touch(session, account)


def get_reject_members(session: Session, scope: Scope, sip_id: t.SipId | None) -> list[str]:
    return [r.uri for r in find_account(session, scope, sip_id).reject_members]


def set_barring_prefixes(session: Session, scope: Scope, sip_id: t.SipId | None, prefixes: list[str] | None) -> None:
    account = find_account(session, scope, sip_id)
    wanted = [t.e164(v, f"prefixes[{i}]", plus=True) for i, v in enumerate(t.string_list(prefixes) or [])]
    account.barring_prefixes = _replace(
        account.barring_prefixes, lambda r: r.prefix, wanted, lambda p: m.BarringPrefix(prefix=p)
    )
    touch(session, account)


def get_barring_prefixes(session: Session, scope: Scope, sip_id: t.SipId | None) -> list[str]:
    return [r.prefix for r in find_account(session, scope, sip_id).barring_prefixes]


# --- phonebook ----------------------------------------------------------------------------


def _entry_values(entry: t.PhonebookEntry | None) -> tuple[str, str, str]:
    if entry is None:
        raise t.invalid("entry", "missing")
    group = (entry.group or "").strip().lower()
    if group:
        group = t.group_name(group, "entry.group")
    return uri(entry.uri, "entry.uri"), t.text(entry.name, "entry.name", 255), group


def _find_entry(account: m.SipAccount, entry_uri: str) -> m.PhonebookEntry:
    for row in account.phonebook:
        if row.uri == entry_uri:
            return row
    raise NGNProError(NO_DATA, f"Phonebook entry {entry_uri} of {account.aor} does not exist")


def add_phonebook_entry(session: Session, scope: Scope, sip_id: t.SipId | None, entry: t.PhonebookEntry | None) -> None:
    account = find_account(session, scope, sip_id)
    entry_uri, name, group = _entry_values(entry)
    if any(r.uri == entry_uri for r in account.phonebook):
        raise NGNProError(INVALID_VALUE, f"Phonebook entry {entry_uri} of {account.aor} already exists")
    account.phonebook.append(m.PhonebookEntry(uri=entry_uri, name=name, group=group))
    touch(session, account)


def update_phonebook_entry(
    session: Session, scope: Scope, sip_id: t.SipId | None, entry: t.PhonebookEntry | None
) -> None:
    account = find_account(session, scope, sip_id)
    entry_uri, name, group = _entry_values(entry)
    row = _find_entry(account, entry_uri)
    if entry.name is not None:
        row.name = name
    if entry.group is not None:
        row.group = group
    touch(session, account)


def delete_phonebook_entry(session: Session, scope: Scope, sip_id: t.SipId | None, entry_uri: str | None) -> None:
    account = find_account(session, scope, sip_id)
    row = _find_entry(account, uri(entry_uri, "uri"))
    account.phonebook.remove(row)
    touch(session, account)


def get_phonebook_entries(
    session: Session, scope: Scope, sip_id: t.SipId | None, match: t.PhonebookEntry | None, rng: Any
) -> t.PhonebookEntryList:
    """Entries matching ``match`` (LIKE patterns; ``group`` absent = any, ``''`` = none)."""
    account = find_account(session, scope, sip_id)
    P = m.PhonebookEntry
    stmt = select(P).where(P.account_id == account.id)
    if match is not None:
        if match.uri:
            stmt = stmt.where(P.uri.like(t.text(match.uri, "match.uri")))
        if match.name:
            stmt = stmt.where(P.name.like(t.text(match.name, "match.name")))
        if match.group is not None:
            group = t.text(match.group, "match.group", 64)
            stmt = stmt.where(P.group == "" if group == "" else P.group.like(group))
    start = t.integer(getattr(rng, "start", None), "range.start")
    count = t.integer(getattr(rng, "count", None), "range.count")
    stmt = stmt.order_by(P.name, P.uri).offset(start)
    if count:
        stmt = stmt.limit(count)
    rows = session.execute(stmt).scalars().all()
    return t.PhonebookEntryList(entries=[t.PhonebookEntry(uri=r.uri, name=r.name, group=r.group) for r in rows])


# --- registered devices -------------------------------------------------------------------


def _split_hostport(value: str) -> tuple[str, int]:
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, ""
    return host, int(port) if port.isdigit() else 0


def parse_contact(contact: str) -> tuple[str, int, str]:
    """(host, port, transport) of a Contact URI (``<sip:u@h:p;transport=tcp>`` or bare)."""
    value = contact.strip()
    if "<" in value:
        value = value[value.index("<") + 1:].split(">", 1)[0]
    scheme, _, rest = value.partition(":")
    hostpart, _, params = rest.partition(";")
    hostpart = hostpart.split("?", 1)[0].rsplit("@", 1)[-1]
    host, port = _split_hostport(hostpart)
    transport = "tls" if scheme.lower() == "sips" else "udp"
    for param in params.split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "transport" and val:
            transport = val.strip().lower()
    return host, port, transport


def parse_received(received: str) -> tuple[str, str, int]:
    """(transport, host, port) of the proxy's ``transport:ip:port`` source notation."""
    transport, _, rest = received.partition(":")
    if not rest:
        return "", "", 0
    host, port = _split_hostport(rest)
    return transport.lower(), host, port


def locations_of(session: Session, account: m.SipAccount, now: _dt.datetime) -> list[t.Location]:
    rows = session.execute(
        select(Location).where(
            Location.username == account.username, Location.domain == account.domain, Location.expires > now
        ).order_by(Location.q.desc(), Location.id)
    ).scalars().all()
    out = []
    for row in rows:
        host, port, transport = parse_contact(row.contact)
        r_transport, r_host, r_port = parse_received(row.received or "")
        out.append(t.Location(
            address=host, port=port or 5060, publicAddress=r_host, publicPort=r_port,
            transport=r_transport or transport, userAgent=row.user_agent or "",
            expires=max(0, int((row.expires - now).total_seconds())), contact=row.contact,
        ))
    return out


def get_sip_device_locations(
    session: Session, scope: Scope, sip_ids: list[t.SipId] | None
) -> list[t.SipDeviceLocations]:
    """One item per requested SipId, in request order, with its live bindings."""
    now = m.utcnow()
    out = []
    for i, sip_id in enumerate(sip_ids or []):
        if sip_id is None:
            raise t.invalid(f"sipIds[{i}]", "missing")
        account = find_account(session, scope, sip_id)
        out.append(t.SipDeviceLocations(
            id=t.SipId(username=account.username, domain=account.domain),
            locations=locations_of(session, account, now),
        ))
    return out


# --- the SipPort methods --------------------------------------------------------------------


class SipSettingsPort(PortService):
    """SipPort: a subscriber's settings page (diversions, DND, reject, barring, phonebook,
    devices)."""

    __port_namespace__ = NS_SIP

    @rpc(t.SipId, t.CallDiversions)
    def setCallDiversions(ctx, sipId, diversions):  # noqa: N802, N803, N805 - wire names
        c = call_context(ctx)
        set_call_diversions(c.session, c.scope, sipId, diversions)

    @rpc(t.SipId, _returns=t.CallDiversions)
    def getCallDiversions(ctx, sipId):  # noqa: N802, N803, N805
        c = call_context(ctx)
        return get_call_diversions(c.session, c.scope, sipId)

    @rpc(t.SipId, t.AcceptRules)
    def setAcceptRules(ctx, sipId, rules):  # noqa: N802, N803, N805
        c = call_context(ctx)
        set_accept_rules(c.session, c.scope, sipId, rules)

    @rpc(t.SipId, _returns=t.AcceptRulesInfo)
    def getAcceptRules(ctx, sipId):  # noqa: N802, N803, N805
        c = call_context(ctx)
        return get_accept_rules(c.session, c.scope, sipId)

    @rpc(t.SipId, StringArray)
    def setRejectMembers(ctx, sipId, members):  # noqa: N802, N803, N805
        c = call_context(ctx)
        set_reject_members(c.session, c.scope, sipId, members)

    @rpc(t.SipId, _returns=StringArray)
    def getRejectMembers(ctx, sipId):  # noqa: N802, N803, N805
        c = call_context(ctx)
        return get_reject_members(c.session, c.scope, sipId)

    @rpc(t.SipId, StringArray)
    def setBarringPrefixes(ctx, sipId, prefixes):  # noqa: N802, N803, N805
        c = call_context(ctx)
        set_barring_prefixes(c.session, c.scope, sipId, prefixes)

    @rpc(t.SipId, _returns=StringArray)
    def getBarringPrefixes(ctx, sipId):  # noqa: N802, N803, N805
        c = call_context(ctx)
        return get_barring_prefixes(c.session, c.scope, sipId)

    @rpc(t.SipId, t.PhonebookEntry)
    def addPhonebookEntry(ctx, sipId, entry):  # noqa: N802, N803, N805
        c = call_context(ctx)
        add_phonebook_entry(c.session, c.scope, sipId, entry)

    @rpc(t.SipId, t.PhonebookEntry)
    def updatePhonebookEntry(ctx, sipId, entry):  # noqa: N802, N803, N805
        c = call_context(ctx)
        update_phonebook_entry(c.session, c.scope, sipId, entry)

    @rpc(t.SipId, Unicode)
    def deletePhonebookEntry(ctx, sipId, uri):  # noqa: N802, N803, N805
        c = call_context(ctx)
        delete_phonebook_entry(c.session, c.scope, sipId, uri)

    @rpc(t.SipId, t.PhonebookEntry, Range, _returns=t.PhonebookEntryList)
    def getPhonebookEntries(ctx, sipId, match, range):  # noqa: N802, N803, N805, A002
        c = call_context(ctx)
        return get_phonebook_entries(c.session, c.scope, sipId, match, range)

    @rpc(t.SipIdArray, _returns=Array(t.SipDeviceLocations))
    def getSipDeviceLocations(ctx, sipIds):  # noqa: N802, N803, N805
        c = call_context(ctx)
        return get_sip_device_locations(c.session, c.scope, sipIds)
