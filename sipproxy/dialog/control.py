"""Call control: the proxy itself ends an established call, with BYE to both parties.

A proxy normally only relays a BYE.  When the call must end for a reason neither party
sees -- the media relay reports no media (a party vanished), later a prepaid account runs
out of credit, or an operator ends the call -- the proxy plays each party's part towards
the other: it sends the callee the BYE the caller would have sent, and the caller the one
the callee would have sent, each with a ``Reason`` header (RFC 3326) saying why.

Each BYE is built as a UAC builds a request within a dialog (RFC 3261 12.2.1.1, 15.1.1):

* Request-URI: that party's remote target, the Contact it sent (as the proxy rewrote it
  for a NATed phone);
* Route: the part of the route set between this proxy and that party.  The dialog keeps the
  Record-Route of the 2xx top first, i.e. from the callee's end: the values above our own
  lead to the callee (sent reversed, nearest first), those below ours lead to the caller
  (sent in order).  Our own values are left out; a strict router (no ``lr``) on top becomes
  the Request-URI and the remote target goes last in Route (12.2.1.1);
* From/To: the impersonated party's tag in From, the receiver's in To;
* CSeq: one more than the highest the impersonated party used in the dialog (the
  caller's INVITE, in-dialog requests the proxy saw), so the receiver does not refuse it
  as out of order (12.2.2).

:func:`end_call_requests` is that construction, plain code with no I/O.  :class:`CallControl`
is the proxy's side: it finds the call in the ``dialogs`` table, sends the two BYEs as
non-INVITE client transactions, deletes the row, releases the media relay session, tells
the accounting (``proxy.events``, the call's Stop) and logs one line.  Usage::

    calls = CallControl(proxy)                 # Proxy does this, as ``proxy.calls``
    calls.note_request(req)                    # every in-dialog request the proxy relays
    calls.end_call(call_id, from_tag, EndReason(200, "Media timeout"), media_reason="media timeout")
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from sipproxy.sip.addressing import Peer
from sipproxy.sip.headers import split_list
from sipproxy.sip.ids import MAGIC_COOKIE
from sipproxy.sip.parser import Request
from sipproxy.sip.routeset import apply_route_set
from sipproxy.sip.uri import URI, ParseError, parse_name_addr

log = logging.getLogger("sipproxy.calls")

__all__ = ["EndReason", "MEDIA_TIMEOUT", "RELAY_LOST", "CREDIT_EXHAUSTED", "MAX_DURATION", "SESSION_EXPIRED", "DialogState", "end_call_requests",
           "CallControl"]

#: how many dialogs' in-dialog CSeq numbers are remembered (oldest forgotten first)
MAX_TRACKED = 100_000


@dataclass(frozen=True)
class EndReason:
    """Why the proxy ends a call: an RFC 3326 ``Reason`` (protocol SIP, a status as cause)."""

    cause: int
    text: str

    def header(self) -> str:
        text = self.text.replace("\\", "\\\\").replace('"', '\\"')
        return f'SIP ;cause={self.cause};text="{text}"'


MEDIA_TIMEOUT = EndReason(200, "Media timeout")
#: the call's media relay ended (its process died): the media path is gone
RELAY_LOST = EndReason(503, "Media relay failed")
#: the prepaid balance paid for no more of the call (RFC 3326 cause: 402 Payment Required)
CREDIT_EXHAUSTED = EndReason(402, "Credit exhausted")
#: no session refresh within the session interval (RFC 4028): a party is gone
SESSION_EXPIRED = EndReason(408, "Session expired")
#: the call lasted the longest any call may (the ``max_call_duration`` setting)
MAX_DURATION = EndReason(200, "Maximum call duration")


class DialogState(Protocol):
    """What the BYEs are built from: a ``dialogs`` row (or :class:`sipproxy.dialog.store.DialogInfo`)."""

    call_id: str
    from_tag: str
    to_tag: str
    caller: str
    callee: str
    caller_contact: str
    callee_contact: str
    caller_cseq: int
    route_set: str


def _target(contact: str) -> URI:
    """The remote target: the URI of the (first) Contact value."""
    values = split_list(contact or "")
    if not values:
        raise ParseError(400, "No Contact")
    return parse_name_addr(values[0]).uri


def _party(party: str, target: URI) -> str:
    """A From/To value for a party known by its SipId (``user@host``), or by a number (a
    PSTN party: its gateway's host completes the SIP URI; the phones match the dialog by
    Call-ID and tags, the URI only has to be valid)."""
    if not party:
        return "<sip:anonymous@anonymous.invalid>"
    return f"<sip:{party}>" if "@" in party else f"<sip:{party}@{target.host or 'anonymous.invalid'}>"


def _split_routes(route_set: str, is_mine: Any) -> tuple[list[str], list[str]]:
    """(Route towards the callee, Route towards the caller) from the 2xx's Record-Route."""
    entries = split_list(route_set or "")
    mine = []
    for i, value in enumerate(entries):
        try:
            if is_mine(parse_name_addr(value).uri):
                mine.append(i)
        except ParseError:
            continue
    if not mine:  # we are not on the path: nothing tells the two sides apart
        return [], []
    return list(reversed(entries[:mine[0]])), entries[mine[-1] + 1:]


def _bye(target: URI, routes: list[str], from_: str, from_tag: str, to: str, to_tag: str,
         call_id: str, cseq: int, reason: EndReason, max_forwards: int) -> Request:
    uri = target.copy()
    headers = [("Max-Forwards", str(max_forwards))]
    headers += [("Route", r) for r in routes]
    headers += [
        ("From", f"{from_};tag={from_tag}"), ("To", f"{to};tag={to_tag}"),
        ("Call-ID", call_id), ("CSeq", f"{cseq} BYE"), ("Reason", reason.header()),
        ("Content-Length", "0"),
    ]
    return Request("BYE", uri, headers)


def end_call_requests(dialog: DialogState, reason: EndReason, is_mine: Any, *,
                      caller_cseq: int = 0, callee_cseq: int = 0,
                      max_forwards: int = 70) -> list[tuple[str, Request]]:
    """The two BYEs that end ``dialog``: ``[("callee", bye), ("caller", bye)]`` (no Via yet).

    ``is_mine(uri)`` tells this proxy's own Record-Route values; ``caller_cseq`` /
    ``callee_cseq`` are the highest CSeq numbers seen from each party in the dialog beyond
    what the row holds.  Raises :class:`sipproxy.sip.uri.ParseError` for a dialog whose Contact
    or Route values cannot be read (nothing can be sent then).
    """
    to_callee, to_caller = _split_routes(dialog.route_set, is_mine)
    caller_target, callee_target = _target(dialog.caller_contact), _target(dialog.callee_contact)
    caller, callee = _party(dialog.caller, caller_target), _party(dialog.callee, callee_target)
    from_caller = max(int(dialog.caller_cseq or 0), caller_cseq) + 1
    from_callee = max(int(getattr(dialog, "callee_cseq", 0) or 0), callee_cseq) + 1
    return [
        ("callee", _bye(callee_target, to_callee, caller, dialog.from_tag,
                        callee, dialog.to_tag, dialog.call_id, from_caller, reason, max_forwards)),
        ("caller", _bye(caller_target, to_caller, callee, dialog.to_tag,
                        caller, dialog.from_tag, dialog.call_id, from_callee, reason, max_forwards)),
    ]


class CallControl:
    """The proxy's I/O side of ending calls (see the module docstring)."""

    def __init__(self, proxy: Any) -> None:
        self.proxy = proxy
        #: (call-id, sender's tag) -> highest CSeq number of an in-dialog request it sent
        self.cseqs: OrderedDict[tuple[str, str], int] = OrderedDict()

    def note_request(self, req: Request) -> None:
        """Remember the CSeq of an in-dialog request; a BYE ends the call, forget it."""
        call_id, tag = req.call_id or "", req.from_.tag or ""
        if req.method == "BYE":
            self.cseqs.pop((call_id, tag), None)
            self.cseqs.pop((call_id, req.to.tag or ""), None)
            return
        key = (call_id, tag)
        number = req.cseq[0]
        if number > self.cseqs.get(key, 0):
            self.cseqs[key] = number
            self.cseqs.move_to_end(key)
            if len(self.cseqs) > MAX_TRACKED:
                self.cseqs.popitem(last=False)

    def on_media_timeout(self, event: Any) -> None:
        """The relay saw no media (a :class:`sipproxy.media.relay.MediaTimeout`)."""
        self.end_call(event.call_id, event.from_tag, MEDIA_TIMEOUT, media_reason=event.reason)

    def on_relay_lost(self, call_id: str) -> None:
        """The media relay carrying the call ended: its media path is gone."""
        self.end_call(call_id, "", RELAY_LOST, media_reason="relay lost")

    def on_deadline(self, row: Any) -> None:
        """A call's deadline passed (the dialog store's cut-off loop claimed its row): its
        session expired unrefreshed (RFC 4028), the longest call allowed is over, or else the
        prepaid balance ran out."""
        now = _dt.datetime.now(_dt.UTC).replace(tzinfo=None)
        if getattr(row, "expires", None) is not None and row.expires <= now:
            self.end_call(row.call_id, row.from_tag, SESSION_EXPIRED, media_reason="session expired")
            return
        limit = getattr(self.proxy.dialogs, "max_duration", 0) or 0
        over = bool(limit) and row.connect_time is not None and \
            now >= row.connect_time + _dt.timedelta(seconds=limit - 1)
        reason = CREDIT_EXHAUSTED if row.tariff and not over else MAX_DURATION
        self.end_call(row.call_id, row.from_tag, reason, media_reason=reason.text.lower())

    def end_call(self, call_id: str, from_tag: str = "", reason: EndReason = MEDIA_TIMEOUT,
                 media_reason: str = "") -> int:
        """End the established call(s) of ``call_id`` (the one with tag ``from_tag`` when given):
        BYE both ways, dialog row deleted, media session released.  Answers how many
        dialogs were ended; the media session is released even when none was found."""
        proxy = self.proxy
        try:
            # either tag: the relay's "caller" is whoever sent the first offer (the callee
            # when the INVITE carried no SDP)
            rows = [r for r in proxy.dialogs.find(call_id) if not from_tag or from_tag in (r.from_tag, r.to_tag)]
        except Exception:
            log.exception("call %s: cannot read its dialog", call_id)
            rows = []
        ended = 0
        for row in rows:
            try:
                requests = end_call_requests(
                    row, reason, proxy._is_my_uri,
                    caller_cseq=self.cseqs.pop((row.call_id, row.from_tag), 0),
                    callee_cseq=self.cseqs.pop((row.call_id, row.to_tag), 0))
            except ParseError as exc:
                log.warning("call %s: cannot build BYE (%s)", call_id, exc.reason)
                requests = []
            sent = [side for side, bye in requests if self._send(bye, row, side)]
            proxy.dialogs.ended(row.call_id, row.from_tag, row.to_tag, remove=True)
            ended += 1
            log.info("call %s -> %s ended by the proxy: %s (BYE to %s, call-id %s)",
                     row.caller, row.callee, reason.text, " and ".join(sent) or "nobody", call_id)
        media, summary = proxy.media, None
        if media is not None:
            end = getattr(media, "end", None)
            if end is not None:
                summary = end(call_id, media_reason or reason.text.lower())
        events = getattr(proxy, "events", None)
        if events is not None:  # accounting: the Stop of each call ended here
            for row in rows:
                events.ended_by_proxy(row.call_id, row.from_tag, row.to_tag, reason.text, summary)
                summary = None
        if not rows:
            log.info("call-id %s: %s, but no established call to end", call_id, reason.text)
        return ended

    def _send(self, bye: Request, row: Any, side: str) -> bool:
        edge = self.proxy.edge
        dest: Peer | None = None
        if not bye.headers.get("route"):  # straight to the phone: its connection if it has one
            source = row.callee_source if side == "callee" else row.caller_source
            try:
                peer = Peer.parse(source or "")
            except ValueError:
                peer = None
            if peer is not None and peer.transport != "udp" and edge.connected(peer):
                dest = peer
        if dest is None:
            try:
                dest = edge.resolve(apply_route_set(bye) if bye.headers.get("route") else bye.uri)
            except ParseError:
                dest = None
        out = edge.listener_for(dest.transport, dest.host) if dest is not None else None
        if dest is None or out is None:
            log.warning("call-id %s: no way to send BYE to the %s", row.call_id, side)
            return False
        via = edge.via_for(out, MAGIC_COOKIE + "bye." + edge.branch_suffix())
        bye = Request(bye.method, bye.uri, [("Via", via), *bye.headers.items()])
        return edge.send_request(bye, dest) is not None
