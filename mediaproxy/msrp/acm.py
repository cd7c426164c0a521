"""The MSRP session manager of an ACM (RFC 6135, the 3GPP "MSRP ACM" model): the platform
stays in the MSRP path of a call whose SDP it rewrote.

sipproxy reserves a session over the control protocol (:mod:`.control`) with the caller's
``a=path`` from the offer, and gets the URI to put in the offer toward the callee; with the
callee's ``a=path`` from the answer it gets the URI to put in the answer toward the caller.
Both end-points are made active (the proxy writes ``a=setup:passive`` for the ACM), so each
connects out to the ACM -- through its NAT -- and the ACM relays between the two
connections.  Toward an end-point that uses an MSRP relay (its path holds the relay's URI
first), the ACM connects to that relay itself: ACM and relay work together.

Each side of a session is a *leg*: the URI the ACM gave that side, that side's path, and the
connection it was last heard on.  A request is accepted only on a leg whose path is known
and only from the end-point that path names (its From-Path ends with it), and it goes only
to the other leg's path: the ACM is no open relay either.
"""

from __future__ import annotations

import datetime as _dt
import secrets
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from .forwarding import Forward, Refuse, forwarded_copy
from .message import Message
from .uri import MsrpUri

__all__ = ["AcmLeg", "AcmSession", "AcmSessions"]


@dataclass
class AcmLeg:
    """One side: ``uri`` is the ACM's URI given to it, ``path`` its own SDP path."""

    uri: MsrpUri
    path: list[MsrpUri] = field(default_factory=list)
    connection: Hashable | None = None


@dataclass
class AcmSession:
    call_id: str
    from_tag: str
    caller: AcmLeg
    callee: AcmLeg
    created: float
    last_used: float = 0.0
    #: side -> [body bytes, messages] it sent
    sent: dict[str, list[int]] = field(default_factory=lambda: {"caller": [0, 0], "callee": [0, 0]})

    @property
    def messages(self) -> int:
        return self.sent["caller"][1] + self.sent["callee"][1]

    @property
    def bytes(self) -> int:
        return self.sent["caller"][0] + self.sent["callee"][0]

    def summary(self, now: float, reason: str = "removed", relay: str = "msrp-acm") -> dict[str, object]:
        """The counts in the shape of the RTP relay's summary (one ``message`` stream,
        messages as packets): the proxy's accounting reads them from the ``remove`` answer,
        and ``mediaproxy.store`` writes them into ``media_sessions`` like the RTP relay's."""
        (ab, am), (bb, bm) = self.sent["caller"], self.sent["callee"]
        return {"call_id": self.call_id, "from_tag": self.from_tag, "to_tag": "", "relay": relay,
                "start": _stamp(self.created), "end": _stamp(now), "reason": reason,
                "messages": am + bm, "bytes": ab + bb, "duration": round(now - self.created, 3),
                "streams": [{"media_type": "message", "codec": "MSRP",
                             "bytes_caller_to_callee": ab, "packets_caller_to_callee": am,
                             "bytes_callee_to_caller": bb, "packets_callee_to_caller": bm}]}


def _stamp(t: float) -> str:
    """The summary's time format (mediaproxy.store reads it back)."""
    return _dt.datetime.fromtimestamp(t, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class AcmSessions:
    """The ACM's sessions.  ``endpoints`` maps a scheme (``msrp``/``msrps``) to the
    (host, port) on which end-points reach the ACM with it."""

    endpoints: dict[str, tuple[str, int]]
    #: a session neither used nor updated this long is ended (a proxy that never removed it)
    idle_timeout: float = 3600.0
    clock: Callable[[], float] = time.time
    #: called with the summary of each session that ends (mediaproxy.store: media_sessions)
    on_end: Callable[[dict[str, object]], object] | None = None
    #: the ``relay`` of the summaries: which ACM it was
    name: str = "msrp-acm"
    sessions: dict[tuple[str, str], AcmSession] = field(default_factory=dict)
    by_uri: dict[str, tuple[AcmSession, str]] = field(default_factory=dict)

    def _uri(self, scheme: str) -> MsrpUri:
        if scheme not in self.endpoints:
            scheme = next(iter(self.endpoints))
        host, port = self.endpoints[scheme]
        return MsrpUri(scheme, host, port, secrets.token_hex(12), "tcp")

    def offer(self, call_id: str, from_tag: str, path: list[MsrpUri]) -> MsrpUri:
        """The caller's path (from the offer); the URI to write into the offer toward the
        callee.  A new offer of the same call (re-INVITE) updates the caller's path."""
        sess = self.sessions.get((call_id, from_tag))
        if sess is None:
            scheme = path[-1].scheme
            sess = AcmSession(call_id, from_tag, AcmLeg(self._uri(scheme)), AcmLeg(self._uri(scheme)), self.clock())
            self.sessions[(call_id, from_tag)] = sess
            self.by_uri[sess.caller.uri.session_id] = (sess, "caller")
            self.by_uri[sess.callee.uri.session_id] = (sess, "callee")
        sess.caller.path = list(path)
        sess.last_used = self.clock()
        return sess.callee.uri

    def answer(self, call_id: str, from_tag: str, path: list[MsrpUri]) -> MsrpUri | None:
        """The callee's path (from the answer); the URI to write into the answer toward
        the caller (None: no such session)."""
        sess = self.sessions.get((call_id, from_tag))
        if sess is None:
            return None
        sess.callee.path = list(path)
        sess.last_used = self.clock()
        return sess.caller.uri

    def remove(self, call_id: str, from_tag: str, reason: str = "removed") -> dict[str, object] | None:
        """End a session; its summary (None: no such session)."""
        sess = self.sessions.pop((call_id, from_tag), None)
        if sess is None:
            return None
        self.by_uri.pop(sess.caller.uri.session_id, None)
        self.by_uri.pop(sess.callee.uri.session_id, None)
        summary = sess.summary(self.clock(), reason, self.name)
        if self.on_end is not None:
            self.on_end(summary)
        return summary

    def expire(self) -> list[dict[str, object]]:
        """End the sessions idle for ``idle_timeout``; their summaries."""
        limit = self.clock() - self.idle_timeout
        old = [s for s in self.sessions.values() if s.last_used < limit]
        return [self.remove(s.call_id, s.from_tag, "idle") for s in old]  # type: ignore[misc]

    def owns(self, uri: MsrpUri) -> bool:
        return uri.session_id in self.by_uri

    def drop_connection(self, conn: Hashable) -> None:
        for sess in self.sessions.values():
            for leg in (sess.caller, sess.callee):
                if leg.connection == conn:
                    leg.connection = None

    def route(self, arrived_on: Hashable, head: Message) -> Forward | Refuse:
        to, frm = head.to_path, head.from_path
        found = self.by_uri.get(to[0].session_id)
        if found is None:
            return Refuse(481, "no such ACM session")
        sess, side = found
        leg, other = (sess.caller, sess.callee) if side == "caller" else (sess.callee, sess.caller)
        if len(to) != 1:
            return Refuse(403, "the ACM is the end of this path")
        if not leg.path or frm[-1] != leg.path[-1]:
            return Refuse(403, "not the end-point this ACM URI was given to")
        leg.connection = arrived_on
        sess.last_used = self.clock()
        if not other.path:
            return Refuse(481, "the other party has not answered yet", binding=True)
        out = forwarded_copy(head, other.path, [other.uri])
        if other.connection is not None:
            fwd = Forward(out, other.connection, None, leg.uri)
        elif len(other.path) > 1:
            fwd = Forward(out, None, other.path[0], leg.uri)  # its relay: the ACM connects to it
        else:
            return Refuse(481, "the other party has not connected yet", binding=True)
        rng = head.byte_range if head.method == "SEND" else None
        if rng is not None and rng.end is not None:
            counts = sess.sent[side]
            counts[0] += max(0, rng.end - rng.start + 1)
            if rng.total and rng.end == rng.total:
                counts[1] += 1  # the last chunk of a message
        return fwd
