"""Call diversion (the routing guide's "Call Diversion"; RFC 5806 Diversion header):
whether a call to a local account goes elsewhere, where, and the Diversion header value to
append.  Sans-I/O: the account's diversions come from the routing data; the answer is a
decision value (:class:`Divert` or :class:`NoDivert`), the pipeline does the forwarding.

Conditions (NGNPro's CallDiversions members) and when they apply:

========  ====================================================  ===================
FUNC      every call, before the phones are tried                ``unconditional``
FNOL      the account has no registered contact ("not online")   ``unavailable``
FBUS      every branch answered 486 Busy Here or 600 Busy        ``user-busy``
          Everywhere
FNOA      the account's ring timeout (its ``timeout``) expired   ``no-answer``
          and the proxy cancelled the branches
FUNV      the branches failed otherwise: 480, 408 (a phone that  ``unavailable``
          does not answer the INVITE), 500, 502, 503, 504, mixed
          with busy ones at most
========  ====================================================  ===================

(right column: the RFC 5806 ``reason``).  A branch that declined (603), asked for
credentials, or any other final answer means no diversion after the fork: the caller gets
that answer.  The caller's CANCEL (487 without the ring timeout) diverts nothing.

Targets (``sip:``/``sips:``/``tel:`` URIs or ``<voice-mailbox>``) are classified:

* ``voicemail`` -- ``<voice-mailbox>``: the pipeline knows the voicemail server;
* ``local`` -- a SIP URI of a local domain with a user part that is not a telephone number
  (an account, an alias, or a quick-dial number of the diverting account);
* ``number`` -- ``tel:``, or a local-domain SIP URI whose user part is a telephone number
  (``+`` or ``0`` then digits): routed like a PSTN call, charged to the diverting account,
  so an account without PSTN access (:attr:`Account.pstn_access`) cannot divert there
  unless ``on_net`` says the number is one of ours;
* ``remote`` -- a SIP URI of another domain.

Bounds: at most ``max_diversions`` diversions per call, counted from the Diversion headers
the request already carries (the ``counter`` of each entry, 1 when absent, RFC 5806); no
diversion to the diverting account itself, nor to an address that already diverted this
call (a loop A -> B -> A).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from sipproxy.directory.routingdata import (
    CONDITIONS,
    FBUS,
    FNOA,
    FNOL,
    FUNC,
    FUNV,
    VOICEMAILBOX,
    Diversion,
)
from sipproxy.sip.uri import ParseError, parse_uri

__all__ = [
    "Divert", "NoDivert", "REASONS", "VOICEMAIL", "LOCAL", "NUMBER", "REMOTE", "classify",
    "condition_before_fork", "condition_after_fork", "prior_diversions", "diverting_parties",
    "diversion_header", "decide",
]

#: RFC 5806 diversion-reason per NGNPro condition
REASONS = {FUNC: "unconditional", FBUS: "user-busy", FNOA: "no-answer", FNOL: "unavailable", FUNV: "unavailable"}

#: target kinds
VOICEMAIL = "voicemail"
LOCAL = "local"
NUMBER = "number"
REMOTE = "remote"

BUSY_STATUSES = frozenset({486, 600})
UNAVAILABLE_STATUSES = frozenset({408, 480, 500, 502, 503, 504})


class Divert(NamedTuple):
    """Divert the call: to ``uri`` (the new Request-URI; None for the voice mailbox, whose
    server the pipeline knows), appending the Diversion header ``header``; ``count`` is the
    number of diversions of the call with this one."""

    condition: str
    reason: str
    target: str
    kind: str
    uri: str | None
    header: str
    count: int


class NoDivert(NamedTuple):
    """No diversion; ``why`` says why (for the log): ``not set``, ``too many diversions``,
    ``invalid target``, ``diverts to itself``, ``diversion loop``, ``no PSTN access``."""

    condition: str | None
    why: str


def _is_number(user: str) -> bool:
    digits = user[1:] if user.startswith("+") else user
    return digits.isdigit() and (user.startswith("+") or user.startswith("0"))


def classify(target: str, is_local_domain: Callable[[str], bool]) -> tuple[str, str | None] | None:
    """``(kind, uri)`` of a diversion target (see the module's text), or None when it is not
    one (unparsable, another scheme, no user part)."""
    t = target.strip()
    if t.lower() in (VOICEMAILBOX, "voice-mailbox"):
        return VOICEMAIL, None
    if ":" not in t.split("@", 1)[0]:
        t = "sip:" + t
    try:
        uri = parse_uri(t)
    except ParseError:
        return None
    scheme = uri.scheme.lower()
    if scheme == "tel":
        digits = (uri.user or "").removeprefix("+")
        return (NUMBER, t) if digits.isdigit() else None
    if scheme not in ("sip", "sips") or not uri.user or not uri.host:
        return None
    if not is_local_domain(uri.host.lower()):
        return REMOTE, t
    return (NUMBER if _is_number(uri.user) else LOCAL), t


def condition_before_fork(diversions: Iterable[Diversion], online: bool) -> str | None:
    """The condition that applies before the phones are tried: FUNC when set, else FNOL when
    set and the account has no contact; None: fork to the contacts."""
    conditions = {d.condition for d in diversions}
    if FUNC in conditions:
        return FUNC
    if not online and FNOL in conditions:
        return FNOL
    return None


def condition_after_fork(statuses: Iterable[int], ring_timeout_expired: bool = False) -> str | None:
    """The condition the branches' final answers make (no 2xx among them): FNOA when the
    ring timeout expired, FBUS when every branch was busy, FUNV when every branch failed
    busy or unavailable, None otherwise (see the module's table)."""
    if ring_timeout_expired:
        return FNOA
    codes = list(statuses)
    if not codes or any(200 <= c < 300 for c in codes):
        return None
    if all(c in BUSY_STATUSES for c in codes):
        return FBUS
    if all(c in BUSY_STATUSES or c in UNAVAILABLE_STATUSES for c in codes):
        return FUNV
    return None


def _entries(values: Iterable[str]) -> list[str]:
    """Split Diversion header values at the commas between entries (not inside ``<>`` or
    quotes)."""
    out: list[str] = []
    for value in values:
        depth, quoted, start = 0, False, 0
        for i, ch in enumerate(value):
            if ch == '"' and (i == 0 or value[i - 1] != "\\"):
                quoted = not quoted
            elif not quoted and ch == "<":
                depth += 1
            elif not quoted and ch == ">":
                depth = max(0, depth - 1)
            elif not quoted and depth == 0 and ch == ",":
                out.append(value[start:i].strip())
                start = i + 1
        out.append(value[start:].strip())
    return [e for e in out if e]


def _params(entry: str) -> tuple[str, dict[str, str]]:
    """The address inside ``<>`` (or before the first ``;``) and the entry's parameters."""
    if "<" in entry and ">" in entry:
        addr = entry[entry.index("<") + 1:entry.index(">")]
        rest = entry[entry.index(">") + 1:]
    else:
        addr, _, rest = entry.partition(";")
        rest = ";" + rest if rest else ""
    params: dict[str, str] = {}
    for item in rest.split(";"):
        name, _, value = item.partition("=")
        if name.strip():
            params[name.strip().lower()] = value.strip().strip('"')
    return addr.strip(), params


def prior_diversions(values: Iterable[str]) -> int:
    """How many diversions the Diversion header values tell of: the sum of the entries'
    ``counter`` (1 when absent or not a number)."""
    total = 0
    for entry in _entries(values):
        counter = _params(entry)[1].get("counter", "1")
        total += int(counter) if counter.isdigit() and int(counter) > 0 else 1
    return total


def _aor(text: str) -> str | None:
    try:
        uri = parse_uri(text if ":" in text.split("@", 1)[0] else "sip:" + text)
    except ParseError:
        return None
    if not uri.user:
        return None
    return f"{uri.user}@{uri.host.lower()}" if uri.host else uri.user


def diverting_parties(values: Iterable[str]) -> frozenset[str]:
    """The ``user@domain`` (domain lower-cased) of every party that already diverted the call."""
    found = (_aor(_params(entry)[0]) for entry in _entries(values))
    return frozenset(a for a in found if a)


def diversion_header(address: str, reason: str, counter: int = 1) -> str:
    """A Diversion header value (RFC 5806): ``<sip:alice@example.com>;reason=user-busy;counter=1``;
    ``address`` is the diverting party (``user@domain`` gets ``sip:``)."""
    if ":" not in address.split("@", 1)[0]:
        address = "sip:" + address
    return f"<{address}>;reason={reason};counter={counter}"


def decide(
    account: Any,
    diversions: Iterable[Diversion],
    condition: str | None,
    *,
    is_local_domain: Callable[[str], bool],
    prior: int = 0,
    diverted_by: frozenset[str] = frozenset(),
    max_diversions: int = 5,
    on_net: Callable[[str], bool] | None = None,
    address: str | None = None,
) -> Divert | NoDivert:
    """The diversion of a call to ``account`` under ``condition`` (see the module's text).

    ``prior``/``diverted_by``: :func:`prior_diversions` and :func:`diverting_parties` of the
    request's Diversion headers; ``on_net(number)``: whether a number target is one of ours
    (ENUM), so that an account without PSTN access may still divert to it; ``address``: the
    diverting address for the header (default: the account's ``user@domain``)."""
    if condition is None or condition not in CONDITIONS:
        return NoDivert(condition, "not set")
    target = next((d.target for d in diversions if d.condition == condition), None)
    if not target:
        return NoDivert(condition, "not set")
    if prior >= max_diversions:
        return NoDivert(condition, "too many diversions")
    classified = classify(target, is_local_domain)
    if classified is None:
        return NoDivert(condition, "invalid target")
    kind, uri = classified
    own = f"{account.username}@{account.domain.lower()}"
    if uri is not None and kind in (LOCAL, REMOTE):
        to = _aor(uri)
        if to == own:
            return NoDivert(condition, "diverts to itself")
        if to in diverted_by:
            return NoDivert(condition, "diversion loop")
    if kind == NUMBER and not getattr(account, "pstn_access", False):
        number = parse_uri(uri).user if uri else ""
        if on_net is None or not on_net(number or ""):
            return NoDivert(condition, "no PSTN access")
    reason = REASONS[condition]
    header = diversion_header(address or own, reason)
    return Divert(condition, reason, target, kind, uri, header, prior + 1)
