"""Authorization of calls (the routing guide's AAA section, "Authorization"), sans-I/O.

Each check is a pure function of plain values (an :class:`~sipproxy.directory.account.Account`,
numbers, addresses, a time) returning a :class:`Refusal` -- the status code, the reason
phrase and the text of the RFC 3261 20.43 ``Warning`` header -- or None when the request
may go on.  The proxy and the routing steps read the data (cached by
:mod:`sipproxy.directory`) and answer the refusal.

Outgoing calls of a local subscriber (the caller's account):

====  =====================================  ==========================================
rule  refused when                           answer
====  =====================================  ==========================================
1     the PSTN without PSTN access           403 No PSTN Access
2     the account is blocked                 403 Account Blocked (by the administrator:
                                             the ``blocked`` group; by its customer: the
                                             same group with property ``blocked_by`` =
                                             ``customer``: 403 Account Blocked By Customer)
3     the monthly quota is used up (PSTN;    403 Quota Exceeded
      or the account is in the ``quota``
      group)
4     prepaid, and the balance does not      402 Insufficient Credit
      cover the first increment (PSTN)
4b    prepaid, and no rate for the           403 Destination Not Rated
      destination (PSTN)
5     ``call_limit`` calls already going     403 Call Limit Reached
6     a barring prefix matches the number    403 Destination Barred
====  =====================================  ==========================================

Rule 7 (a site hook's refusal) is the hook's own answer, with a ``Warning: 399`` like
these (:meth:`sipproxy.routing.hookapi.HookAPI.reply`).  Emergency calls pass all of
these; calls from trusted peers carry no account and are not checked (3 to 6 do not apply
to them, the guide's "PBX to PSTN" flow).

Incoming calls to a local subscriber (the callee's account):

====  =====================================  ==========================================
1     source IP not in the ACL of the        403 Source Address Not Allowed
      callee's domain or of the account
      (each: empty allows all)
2     the callee's account is blocked        403 Account Blocked
3     accept rules active, caller not in     603 Decline (Not Accepted By Callee)
4     outside the accept rules' windows      480 Temporarily Unavailable (Do Not Disturb)
5     the caller is in the reject list       603 Decline (Rejected By Callee)
====  =====================================  ==========================================

Rule 6 (a site hook's refusal) is again the hook's own answer, as for outgoing rule 7.

May import :mod:`sipproxy.directory.account` (values only); no I/O.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import NamedTuple

from sipproxy.directory.account import GROUP_QUOTA, AcceptWindow, Account

__all__ = [
    "Refusal", "warning_header", "outgoing", "pstn", "incoming", "barred_prefix", "acl_allows",
    "accept_decision", "caller_keys",
    "NO_PSTN", "BLOCKED", "BLOCKED_BY_CUSTOMER", "QUOTA", "CREDIT", "NOT_RATED", "CALL_LIMIT", "BARRED",
    "ACL", "CALLEE_BLOCKED", "NOT_ACCEPTED", "DND", "REJECTED",
]


class Refusal(NamedTuple):
    """Why a request is refused: ``status`` and ``reason`` of the response, ``warning``
    the human-readable text of its ``Warning: 399`` header."""

    status: int
    reason: str
    warning: str


def warning_header(host: str, text: str) -> tuple[str, str]:
    """``Warning: 399 host "text"`` (RFC 3261 20.43: warn-code 399 "miscellaneous warning",
    warn-agent our host name, the text a quoted-string: ``"`` and ``\\`` escaped)."""
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return ("Warning", f'399 {host or "sipproxy"} "{quoted}"')


# -- outgoing --------------------------------------------------------------------------

NO_PSTN = Refusal(403, "No PSTN Access", "The account has no access to the PSTN")
BLOCKED = Refusal(403, "Account Blocked", "The account is blocked by the administrator")
BLOCKED_BY_CUSTOMER = Refusal(403, "Account Blocked By Customer", "The account is blocked by its customer")
QUOTA = Refusal(403, "Quota Exceeded", "The monthly quota of the account is used up")
CREDIT = Refusal(402, "Insufficient Credit", "The prepaid balance does not cover the call")
NOT_RATED = Refusal(403, "Destination Not Rated", "No rate for this destination: a prepaid account cannot pay for it")
CALL_LIMIT = Refusal(403, "Call Limit Reached", "The account has reached its maximum number of concurrent calls")
BARRED = Refusal(403, "Destination Barred", "The destination is barred for the account")


def blocked(account: Account) -> Refusal | None:
    """Rule 2: the ``blocked`` group; who blocked it is the ``blocked_by`` property."""
    if not account.blocked:
        return None
    return BLOCKED_BY_CUSTOMER if getattr(account, "blocked_by", "").lower() == "customer" else BLOCKED


def barred_prefix(prefixes: Iterable[str], e164: str | None) -> str | None:
    """Rule 6: the first barring prefix (``+`` E.164 digits, the ``+`` optional) that
    ``e164`` (``+CC...``, the ``+`` optional) starts with; None when none does or there is
    no number."""
    if not e164:
        return None
    number = e164.lstrip("+")
    for prefix in prefixes:
        digits = prefix.strip().lstrip("+")
        if digits and number.startswith(digits):
            return prefix
    return None


def outgoing(account: Account, *, e164: str | None, call: bool,
             active_calls: Callable[[], int]) -> Refusal | None:
    """Rules 2, 5 and 6 for any destination of a local subscriber's request: blocked,
    barring prefixes (``e164``: the destination as an E.164 number, None when it is not
    one), and -- for a call (``call``: an INVITE) with a ``call_limit`` -- the number of
    calls the account has going (``active_calls`` is only asked then)."""
    refused = blocked(account)
    if refused is not None:
        return refused
    if barred_prefix(getattr(account, "barring_prefixes", ()), e164) is not None:
        return BARRED
    limit = getattr(account, "call_limit", 0) or 0
    if call and limit > 0 and active_calls() >= limit:
        return CALL_LIMIT
    return None


def pstn(account: Account, *, month_cost: Callable[[], Decimal],
         first_increment_cost: Decimal | None = None, credit: bool = True) -> Refusal | None:
    """Rules 1, 3 and 4 for a call to the PSTN: PSTN access (``free-pstn`` group or
    prepaid; not blocked), the ``quota`` group or the monthly ``quota`` against
    this month's cost so far (``month_cost`` is only asked when there is a quota), and a
    prepaid balance against the cost of the first rating increment at the destination's
    rate (``first_increment_cost``; None: no rating table yet -- the balance must then
    be above zero).  ``credit`` False: rule 4 is checked elsewhere, against the balance
    read at call start (sipproxy.routing.outbound's prepaid rating)."""
    refused = blocked(account)
    if refused is not None:
        return refused
    if GROUP_QUOTA in account.groups:  # put there by the quota job (CDRTool's rating)
        return QUOTA
    if not account.pstn_access:
        return NO_PSTN
    quota = getattr(account, "quota", 0) or 0
    if quota > 0 and not account.prepaid and month_cost() >= quota:
        return QUOTA
    balance = getattr(account, "balance", Decimal(0))
    if account.prepaid and credit:
        needed = first_increment_cost
        if needed is None:
            if balance <= 0:
                return CREDIT
        elif balance < needed or balance <= 0:
            return CREDIT
    return None


# -- incoming --------------------------------------------------------------------------

ACL = Refusal(403, "Source Address Not Allowed", "The source address may not call this account")
CALLEE_BLOCKED = Refusal(403, "Account Blocked", "The called account is blocked")
NOT_ACCEPTED = Refusal(603, "Decline", "The callee accepts no calls from this caller now")
DND = Refusal(480, "Temporarily Unavailable", "The callee accepts no calls at this time (do not disturb)")
REJECTED = Refusal(603, "Decline", "The callee rejects calls from this caller")

#: accept rule group names with a meaning of their own (the rest are phonebook groups)
EVERYBODY = "everybody"
NOBODY = "nobody"


def acl_allows(acl: Iterable[tuple[str, int]], ip: str) -> bool:
    """An empty ACL allows everyone; else ``ip`` must be in one of the ``(ip, mask)``
    networks.  An entry that is not an address is skipped."""
    entries = list(acl)
    if not entries:
        return True
    try:
        addr = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return False
    for net_ip, mask in entries:
        try:
            net = ipaddress.ip_network(f"{net_ip}/{mask}", strict=False)
        except ValueError:
            continue
        if addr.version == net.version and addr in net:
            return True
    return False


def caller_keys(caller: str) -> set[str]:
    """The forms a caller is listed under: ``sip:user@host`` (scheme and case of the
    host folded) and the bare ``user@host``; a number also as its digits with and
    without ``+``."""
    c = caller.strip().strip("<>")
    low = c.lower()
    for scheme in ("sips:", "sip:", "tel:"):
        if low.startswith(scheme):
            c = c[len(scheme):]
            break
    c = c.split(";", 1)[0]
    user, at, host = c.partition("@")
    plain = f"{user}@{host.lower()}" if at else user
    keys = {plain, f"sip:{plain}"}
    if user.lstrip("+").isdigit():
        digits = user.lstrip("+")
        keys |= {digits, "+" + digits}
    return keys


def _listed(caller: set[str], entries: Iterable[str]) -> bool:
    for entry in entries:
        if caller & caller_keys(entry):
            return True
    return False


def _local_now(now: _dt.datetime, timezone: str) -> _dt.datetime:
    """``now`` (UTC, aware or naive) in the account's ``timezone`` (UTC when unknown)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=_dt.UTC)
    if timezone:
        try:
            from zoneinfo import ZoneInfo

            return now.astimezone(ZoneInfo(timezone))
        except (KeyError, ValueError, OSError, ImportError):
            pass
    return now.astimezone(_dt.UTC)


def _minutes(hhmm: str) -> int | None:
    h, sep, m = hhmm.partition(":")
    if not sep or not h.isdigit() or not m.isdigit():
        return None
    return int(h) * 60 + int(m)


def _in_window(rule: AcceptWindow, local: _dt.datetime) -> bool:
    """Within a persistent rule's days (Mon 1 ... Sun 64) and ``start``-``stop`` (a stop
    before the start spans midnight: the morning part counts for the previous day)."""
    start, stop = _minutes(rule.start), _minutes(rule.stop)
    if start is None or stop is None:
        return False
    minute = local.hour * 60 + local.minute
    today = 1 << local.weekday()
    yesterday = 1 << ((local.weekday() - 1) % 7)
    if start <= stop:
        return bool(rule.days & today) and start <= minute < stop
    if minute >= start:
        return bool(rule.days & today)
    return minute < stop and bool(rule.days & yesterday)


def accept_decision(rules: Iterable[AcceptWindow], phonebook: Iterable[tuple[str, str]],
                    caller: str, now: _dt.datetime, timezone: str) -> Refusal | None:
    """Rules 3 and 4 (the accept rules, "do not disturb"):

    * an active temporary rule (``persistent`` False, ``duration`` 0 or not run out)
      decides alone: the caller must be in its groups;
    * else, when persistent rules exist: ``now`` in the account's ``timezone`` must fall in
      one of their windows (480 otherwise), and the caller in that window's groups.

    Groups: ``everybody``, ``nobody``, or phonebook groups (the caller's URI is in the
    account's phonebook under one of them)."""
    rules = list(rules)
    if not rules:
        return None
    utc = now if now.tzinfo is None else now.astimezone(_dt.UTC).replace(tzinfo=None)
    keys = caller_keys(caller)
    groups_of_caller = {group for uri, group in phonebook if group and keys & caller_keys(uri)}

    def accepts(groups: frozenset[str]) -> bool:
        if EVERYBODY in groups:
            return True
        if NOBODY in groups and len(groups) == 1:
            return False
        return bool(groups & groups_of_caller)

    for rule in rules:
        if rule.persistent:
            continue
        set_at = rule.set_at
        if set_at is not None and set_at.tzinfo is not None:
            set_at = set_at.astimezone(_dt.UTC).replace(tzinfo=None)
        if rule.duration and set_at is not None and utc >= set_at + _dt.timedelta(minutes=rule.duration):
            continue  # run out
        return None if accepts(rule.groups) else NOT_ACCEPTED
    persistent = [r for r in rules if r.persistent]
    if not persistent:
        return None
    local = _local_now(now, timezone)
    windows = [r for r in persistent if _in_window(r, local)]
    if not windows:
        return DND
    if any(accepts(r.groups) for r in windows):
        return None
    return NOT_ACCEPTED


def incoming(account: Account, *, source_ip: str, caller: str, now: _dt.datetime,
             check_acl: bool = True, domain_acl: Iterable[tuple[str, int]] = ()) -> Refusal | None:
    """The incoming rules for a call from ``caller`` (its From URI) at ``source_ip`` to the
    local ``account``, in the guide's order: ACL (the domain's and the account's; skipped
    with ``check_acl`` False: a trusted peer), blocked, accept rules, time of day,
    reject list."""
    if check_acl and not (acl_allows(domain_acl, source_ip) and acl_allows(getattr(account, "acl", ()), source_ip)):
        return ACL
    if getattr(account, "blocked", False):
        return CALLEE_BLOCKED
    refused = accept_decision(getattr(account, "accept_rules", ()), getattr(account, "phonebook", ()), caller, now,
                              getattr(account, "timezone", ""))
    if refused is not None:
        return refused
    rejected = getattr(account, "reject_members", ())
    if rejected and _listed(caller_keys(caller), rejected):
        return REJECTED
    return None
