"""Session timers (RFC 4028) as a proxy enforces them, sans-I/O.

A call whose parties vanished without a BYE (a phone lost its network, a gateway
restarted) would otherwise stay up for its media timeout, or for ever when its media does not
go through our relay.  RFC 4028 gives SIP a keep-alive: the parties agree on a session
interval and one of them (the refresher) sends a re-INVITE or UPDATE within it.  A proxy on
the path sees the refreshes, so when none comes within the interval it knows the session
is dead and ends it with BYE both ways.

The proxy's parts (RFC 4028 sections 8.1 and 8.2):

* on an initial INVITE: refuse one whose Session-Expires is below our Min-SE (422 with our
  ``Min-SE``); raise a Min-SE below ours; and, when the operator asks for session timers
  (``session_expires``), insert ``Session-Expires`` when the caller did not;
* on its 2xx: when the callee did not take up session timers but the caller supports them
  (``Supported: timer``), add ``Session-Expires: N;refresher=uac`` and ``Require: timer``,
  so the caller refreshes; the interval in the 2xx is the session's;
* afterwards every 2xx to a re-INVITE or UPDATE is a refresh: the session expires one
  interval after the last one (the dialog store keeps that time; the cut-off loop ends the
  session when it passes).
"""

from __future__ import annotations

from typing import NamedTuple

from sipproxy.sip.headers import split_list

__all__ = ["SessionExpires", "parse_session_expires", "supports_timer", "MIN_SE"]

#: the smallest interval RFC 4028 allows (section 4: Min-SE at least 90 s)
MIN_SE = 90


class SessionExpires(NamedTuple):
    """``Session-Expires: <seconds>[;refresher=uac|uas]``."""

    interval: int
    refresher: str = ""

    def header(self) -> str:
        return f"{self.interval};refresher={self.refresher}" if self.refresher else str(self.interval)


def parse_session_expires(value: str | None) -> SessionExpires | None:
    """The header's value, or None when absent or not a delta-seconds (RFC 4028 section 4:
    ``delta-seconds *(SEMI se-params)``)."""
    if not value:
        return None
    first, *params = value.split(";")
    first = first.strip()
    if not first.isdigit() or len(first) > 10:
        return None
    refresher = ""
    for param in params:
        name, _, v = param.partition("=")
        if name.strip().lower() == "refresher" and v.strip().lower() in ("uac", "uas"):
            refresher = v.strip().lower()
    return SessionExpires(int(first), refresher)


def parse_min_se(value: str | None) -> int | None:
    """``Min-SE: <seconds>`` (parameters ignored), or None."""
    if not value:
        return None
    first = value.split(";", 1)[0].strip()
    return int(first) if first.isdigit() and len(first) <= 10 else None


def supports_timer(supported: list[str]) -> bool:
    """Whether ``Supported`` values (each possibly a comma list) name the ``timer`` option."""
    return any(tag.strip().lower() == "timer" for value in supported for tag in split_list(value))


class Offer(NamedTuple):
    """What the proxy does to an initial INVITE: refuse it (``refuse_min_se``: answer 422
    with this Min-SE), or set these headers (name, value) before forwarding it."""

    refuse_min_se: int = 0
    headers: tuple[tuple[str, str], ...] = ()


def _raise_min_se(their_min: int, our_min: int) -> tuple[tuple[str, str], ...]:
    """RFC 4028 8.1: a Min-SE below ours is raised to ours; an absent one is inserted when
    ours is above the default of 90 s (absent means 90)."""
    if their_min < our_min and (their_min or our_min > MIN_SE):
        return (("Min-SE", str(our_min)),)
    return ()


def on_invite(session_expires: str | None, min_se: str | None, *, ours: int, our_min_se: int) -> Offer:
    """RFC 4028 section 8.1 for an initial INVITE carrying ``session_expires`` and
    ``min_se`` (header values or None); ``ours``: the interval to ask for when the caller
    did not (0: none), ``our_min_se``: the smallest we accept."""
    asked = parse_session_expires(session_expires)
    their_min = parse_min_se(min_se) or 0
    if asked is not None:
        if asked.interval < our_min_se:
            return Offer(refuse_min_se=max(our_min_se, their_min))
        return Offer(headers=_raise_min_se(their_min, our_min_se))
    if ours <= 0:
        return Offer()
    interval = max(ours, our_min_se, their_min)
    return Offer(headers=(("Session-Expires", str(interval)), *_raise_min_se(their_min, our_min_se)))


def on_answer(request_se: str | None, request_supported: list[str],
              answer_se: str | None) -> tuple[int, tuple[tuple[str, str], ...]]:
    """RFC 4028 section 8.2 for the 2xx to an initial INVITE: the session interval (0: no
    session timer) and the headers to add to the 2xx before relaying it."""
    answered = parse_session_expires(answer_se)
    if answered is not None:
        return answered.interval, ()
    asked = parse_session_expires(request_se)
    if asked is None or not supports_timer(request_supported):
        return 0, ()  # neither party does session timers: none
    return asked.interval, (("Session-Expires", SessionExpires(asked.interval, "uac").header()),
                            ("Require", "timer"))
