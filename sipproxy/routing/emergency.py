"""Emergency numbers (the routing guide's "Emergency Calls"): a short number such as 112 or
911, configured as emergency in ``[sipproxy] emergency_numbers``, dialled by a local
subscriber, goes to the destination the emergency mapping gives for the subscriber's
``region``.  Sans-I/O: the mapping is asked through a callable; the answer is a decision
value, the pipeline builds the SIP response or the new Request-URI.

:func:`decide` answers:

* None -- not an emergency number: routing goes on;
* :class:`EmergencyRoute` -- route the call to ``destination`` (a URI, or a number the
  PSTN routing takes); emergency calls do not need PSTN access, quota or balance;
* :class:`EmergencyRefused` -- ``403`` when the caller is not a local subscriber (only local
  users may dial an emergency number), ``404`` when neither the caller's region nor the
  default region ``""`` maps the number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

__all__ = ["EmergencyRoute", "EmergencyRefused", "is_emergency", "decide", "URI", "NUMBER"]

#: kinds of destination
URI = "uri"
NUMBER = "number"


class EmergencyRoute(NamedTuple):
    """Route the emergency call: ``destination`` as provisioned; ``kind`` says whether it is
    a URI (``sip:``/``sips:``/``tel:``; a bare ``user@host`` is given ``sip:``) -- ``target``
    is then that URI -- or a number (digits, optional ``+``) to route like a PSTN number --
    ``target`` is then the number."""

    number: str
    region: str
    destination: str
    kind: str
    target: str


class EmergencyRefused(NamedTuple):
    """Refuse the emergency call with ``status`` and ``reason`` (a reason phrase)."""

    number: str
    status: int
    reason: str


def is_emergency(user: str, numbers: Iterable[str]) -> bool:
    """Whether the dialled user part is one of the configured emergency numbers."""
    return bool(user) and user.strip() in set(numbers)


def _destination(destination: str) -> tuple[str, str]:
    d = destination.strip()
    digits = d[1:] if d.startswith("+") else d
    if digits.isdigit():
        return NUMBER, d
    if ":" in d.split("@", 1)[0]:
        return URI, d
    return URI, "sip:" + d


def decide(user: str, account: Any, numbers: Iterable[str],
           lookup: Callable[[str, str], str | None]) -> EmergencyRoute | EmergencyRefused | None:
    """The emergency decision for ``user`` (the Request-URI's user part) dialled by
    ``account`` (the authenticated local subscriber, None for anyone else).

    ``lookup(region, number)`` gives the mapping's destination or None (the routing data's
    ``emergency``); the caller's region is tried first, then the default region ``""``."""
    if not is_emergency(user, numbers):
        return None
    number = user.strip()
    if account is None:
        return EmergencyRefused(number, 403, "Emergency Calls Only From Local Subscribers")
    region = (getattr(account, "region", "") or "").strip()
    destination = lookup(region, number)
    used = region
    if not destination and region:
        destination, used = lookup("", number), ""
    if not destination or not destination.strip():
        return EmergencyRefused(number, 404, "No Emergency Route For Region")
    kind, target = _destination(destination)
    return EmergencyRoute(number, used, destination, kind, target)
