"""Media sessions without I/O: streams, the relay ports of each party, counters, summaries.

A *session* is one call (Call-ID + the caller's From tag).  It holds one *stream* per SDP
``m=`` line, matched by position as RFC 3264 section 8 requires (a re-offer keeps every
m-line in place and disables a stream with port 0).  Each stream has two *legs*: the caller's
(the relay ports the caller sends to) and the callee's.  Each leg owns two :class:`RelayPort`
objects, RTP and RTCP, on an even/odd port pair.

Nothing here touches a socket: the relay (``relay.py``) gives us ports through an
``allocate()`` callback and stores its socket in :attr:`RelayPort.sock`; the forwarding hot
path reads and writes the counters of :class:`RelayPort` directly and calls
:meth:`RelayPort.accept` only when a packet comes from an address other than the locked one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CALLER, CALLEE = 0, 1
PARTY_NAMES = ("caller", "callee")
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
HOLD_ADDRESSES = ("0.0.0.0", "::")

Address = tuple  # (ip, port) for IPv4, (ip, port, 0, 0) for IPv6: what recvfrom() returns


def socket_address(ip: str, port: int, v6: bool) -> Address | None:
    """The address tuple a relay socket of that family reports for ``ip:port``, or None when
    the address cannot be reached from it (another family, not an address)."""
    import ipaddress

    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if v6:
        return (addr.compressed, port, 0, 0) if addr.version == 6 else None
    return (addr.compressed, port) if addr.version == 4 else None


class RelayPort:
    """One relay UDP port (RTP or RTCP of one leg) and where its packets go.

    ``learned`` is the party's real source address, learned from the first packet (symmetric
    RTP, RFC 4961) and locked afterwards; ``sdp_addr`` is what the party's SDP announced.
    Packets are sent to the partner port's party: learned address first, SDP address until
    something was learned.
    """

    __slots__ = ("port", "sock", "fd", "recv", "send", "partner", "learned", "sdp_addr",
                 "packets", "bytes", "dropped", "last", "leg")

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: Any = None
        self.fd = -1
        self.recv: Any = None  # the socket's bound recvfrom_into / sendto, for the hot path
        self.send: Any = None
        self.partner: RelayPort | None = None
        self.learned: Address | None = None
        self.sdp_addr: Address | None = None
        self.packets = 0
        self.bytes = 0
        self.dropped = 0
        self.last = 0.0
        self.leg: Leg | None = None

    def accept(self, addr: Address) -> bool:
        """Decide about a packet from ``addr`` != :attr:`learned`: learn it, or drop it.

        The first source is learned and locked, so a third party cannot take over a stream
        (media hijack).  The one exception is the address the party itself announced in SDP:
        it wins over an earlier learned source, so an attacker racing the real endpoint's
        first packet cannot keep the stream.
        """
        if self.learned is None or addr == self.sdp_addr:
            self.learned = addr
            return True
        self.dropped += 1
        return False

    def destination(self) -> Address | None:
        return self.learned or self.sdp_addr


@dataclass
class Leg:
    """What one party (caller or callee) sends to and announced for one stream."""

    party: int
    rtp: RelayPort
    rtcp: RelayPort
    direction: str = "sendrecv"
    address: str = ""
    port: int = 0
    known: bool = False  # the party's SDP for this stream has been seen
    updated: float = 0.0  # monotonic time of the last SDP update for this leg

    def sends(self) -> bool:
        """Whether this party is expected to send media (not on hold, not recvonly)."""
        return self.known and self.direction in ("sendrecv", "sendonly") and self.address not in HOLD_ADDRESSES

    def last_activity(self) -> float:
        return max(self.rtp.last, self.rtcp.last, self.updated)

    def counters(self) -> dict[str, Any]:
        src = self.rtp.learned
        return {
            "packets": self.rtp.packets + self.rtcp.packets,
            "bytes": self.rtp.bytes + self.rtcp.bytes,
            "rtcp_packets": self.rtcp.packets,
            "dropped": self.rtp.dropped + self.rtcp.dropped,
            "source": _hostport(src[0], src[1]) if src else "",
            "sdp": _hostport(self.address, self.port) if self.known else "",
        }


@dataclass
class Stream:
    index: int
    media_type: str
    legs: tuple[Leg, Leg]
    codec: str = ""
    started: float = field(default_factory=time.time)
    ended: float | None = None
    reason: str = ""
    answered: bool = False

    def ports(self) -> list[RelayPort]:
        return [p for leg in self.legs for p in (leg.rtp, leg.rtcp)]

    def summary(self) -> dict[str, Any]:
        end = self.ended if self.ended is not None else time.time()
        caller, callee = self.legs[CALLER].counters(), self.legs[CALLEE].counters()
        return {
            "index": self.index,
            "media_type": self.media_type,
            "codec": self.codec,
            "caller": caller,
            "callee": callee,
            "packets_caller_to_callee": caller["packets"],
            "bytes_caller_to_callee": caller["bytes"],
            "packets_callee_to_caller": callee["packets"],
            "bytes_callee_to_caller": callee["bytes"],
            "start": _iso(self.started),
            "end": _iso(end),
            "duration": round(end - self.started, 3),
            "reason": self.reason,
        }


@dataclass
class StreamOffer:
    """One SDP media line as the proxy describes it in an ``update``."""

    media_type: str
    address: str
    port: int
    rtcp_port: int = 0
    rtcp_address: str = ""
    codec: str = ""
    direction: str = "sendrecv"
    rtcp_mux: bool = False


class ControlError(Exception):
    """A request the relay refuses; the message goes back to the proxy."""


Allocator = Callable[[], tuple[RelayPort, RelayPort]]
Releaser = Callable[[RelayPort], None]


class Session:
    """One relayed call: ``call_id`` + the caller's tag, and its streams by m-line index."""

    def __init__(self, call_id: str, caller_tag: str, owner: object = None, v6: bool = False) -> None:
        self.v6 = v6
        self.call_id = call_id
        self.caller_tag = caller_tag
        self.callee_tag = ""
        self.owner = owner  # the control connection that last updated the session
        self.streams: list[Stream | None] = []  # None: a slot disabled with port 0
        self.finished: list[Stream] = []  # streams removed by port 0 (kept for the summary)
        self.started = time.time()
        self.created = time.monotonic()
        self.last_update = self.created
        self.timeout_reported: float | None = None
        self.next_check = 0.0  # monotonic time the relay next looks for a media timeout
        #: kernel path: monotonic time of the last read of this session's own counters, asked
        #: before a timeout is reported (the periodic read is up to 2 s old)
        self.kernel_read = float("-inf")
        self.ended: float | None = None

    # -- control -------------------------------------------------------------------------
    def update(self, direction: str, from_tag: str, to_tag: str, offers: list[StreamOffer],
               allocate: Allocator, release: Releaser, now: float | None = None) -> list[dict[str, int]]:
        """Apply one SDP (offer or answer) and answer the relay ports per stream.

        The party that wrote the SDP is the From party of an offer and the To party of an
        answer.  The ports answered are those of the *other* leg: where the party that will
        read this SDP must send.  A stream with port 0 is closed and answers port 0.
        """
        now = time.monotonic() if now is None else now
        for i, offer in enumerate(offers):  # check before changing anything
            if offer.direction not in DIRECTIONS:
                raise ControlError(f"direction {offer.direction!r} is not one of {', '.join(DIRECTIONS)}")
            if direction == "answer" and offer.port and (i >= len(self.streams) or self.streams[i] is None):
                raise ControlError(f"stream {i} was not offered")
        sender_tag = from_tag if direction == "offer" else to_tag
        if sender_tag == self.caller_tag:
            party = CALLER
        else:
            party = CALLEE
            self.callee_tag = sender_tag  # the latest answering fork wins
        self.last_update = now
        self.timeout_reported = None
        self.next_check = 0.0
        answer: list[dict[str, int]] = []
        for i, offer in enumerate(offers):
            while len(self.streams) <= i:
                self.streams.append(None)
            stream = self.streams[i]
            if offer.port == 0:
                if stream is not None:
                    self._close_stream(stream, "removed", release)
                    self.streams[i] = None
                answer.append({"port": 0, "rtcp_port": 0})
                continue
            if stream is None:
                if direction == "answer":
                    raise ControlError(f"stream {i} was not offered")
                stream = self._new_stream(i, offer.media_type, allocate, release)
                self.streams[i] = stream
            elif stream.media_type != offer.media_type:
                # a new stream of another type reusing the slot: a fresh one (RFC 3264 8.3)
                self._close_stream(stream, "replaced", release)
                stream = self._new_stream(i, offer.media_type, allocate, release)
                self.streams[i] = stream
            self._apply(stream.legs[party], offer, now, self.v6)
            if offer.codec and (direction == "answer" or not stream.codec):
                stream.codec = offer.codec
            if direction == "answer":
                stream.answered = True
            other = stream.legs[1 - party]
            answer.append({"port": other.rtp.port, "rtcp_port": other.rtcp.port})
        return answer

    def _new_stream(self, index: int, media_type: str, allocate: Allocator, release: Releaser) -> Stream:
        first = allocate()
        try:
            second = allocate()
        except Exception:
            release(first[0])
            release(first[1])
            raise
        legs = (Leg(CALLER, *first), Leg(CALLEE, *second))
        for leg in legs:
            leg.rtp.leg = leg.rtcp.leg = leg
        # packets arriving on the caller's RTP port go out of the callee's RTP port, etc.
        legs[0].rtp.partner, legs[1].rtp.partner = legs[1].rtp, legs[0].rtp
        legs[0].rtcp.partner, legs[1].rtcp.partner = legs[1].rtcp, legs[0].rtcp
        return Stream(index, media_type, legs)

    @staticmethod
    def _apply(leg: Leg, offer: StreamOffer, now: float, v6: bool) -> None:
        hold = offer.address in HOLD_ADDRESSES
        rtp = socket_address(offer.address, offer.port, v6)
        if offer.rtcp_mux:
            rtcp = rtp
        else:
            rtcp = socket_address(offer.rtcp_address or offer.address, offer.rtcp_port or offer.port + 1, v6)
        if not hold:
            if leg.rtp.sdp_addr != rtp:
                # the party moved (or announced itself for the first time): learn again
                leg.rtp.learned = None
                leg.rtp.sdp_addr = rtp
            if leg.rtcp.sdp_addr != rtcp:
                leg.rtcp.learned = None
                leg.rtcp.sdp_addr = rtcp
        leg.direction = "inactive" if hold and offer.direction == "sendrecv" else offer.direction
        leg.address, leg.port = offer.address, offer.port
        leg.known = True
        leg.updated = now

    def _close_stream(self, stream: Stream, reason: str, release: Releaser) -> None:
        stream.ended = time.time()
        stream.reason = reason
        for p in stream.ports():
            release(p)
        self.finished.append(stream)

    # -- time ----------------------------------------------------------------------------
    def timed_out(self, now: float, timeout: float) -> Stream | None:
        """The first answered stream whose sending party has been silent for ``timeout``."""
        return self.due(now, timeout)[0]

    def due(self, now: float, timeout: float) -> tuple[Stream | None, float]:
        """The timed-out stream (or None) and the earliest time one could time out, so the
        relay looks at this session again only then (not on every tick)."""
        soonest = float("inf")
        for stream in self.streams:
            if stream is None or not stream.answered:
                continue
            for leg in stream.legs:
                if leg.sends():
                    at = leg.last_activity() + timeout
                    if at < now:
                        return stream, now
                    soonest = min(soonest, at)
        return None, soonest

    def idle(self, now: float) -> float:
        """Seconds since anything (a packet or an update) happened in this session."""
        last = self.last_update
        for stream in self.streams:
            if stream is not None:
                for p in stream.ports():
                    last = max(last, p.last)
        return now - last

    # -- end -----------------------------------------------------------------------------
    def end(self, reason: str, release: Releaser) -> None:
        self.ended = time.time()
        for i, stream in enumerate(self.streams):
            if stream is not None:
                self._close_stream(stream, reason, release)
                self.streams[i] = None

    def summary(self, relay: str = "", reason: str = "") -> dict[str, Any]:
        end = self.ended if self.ended is not None else time.time()
        live = [s for s in self.streams if s is not None]
        streams = sorted(self.finished + live, key=lambda s: (s.index, s.started))
        return {
            "call_id": self.call_id,
            "from_tag": self.caller_tag,
            "to_tag": self.callee_tag,
            "relay": relay,
            "start": _iso(self.started),
            "end": _iso(end),
            "duration": round(end - self.started, 3),
            "reason": reason,
            "streams": [s.summary() for s in streams],
        }


def _hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class PortPool:
    """Even RTP ports of ``[low, high]`` (RTCP is the odd port above), reused least recently.

    Reuse order is FIFO so that a port just released (whose old peer may still be sending)
    is the last to be handed out again.
    """

    def __init__(self, low: int, high: int) -> None:
        from collections import deque

        first = low + (low & 1)
        self.free: deque[int] = deque(range(first, high, 2))  # high itself may be the last odd
        self.capacity = len(self.free)

    def take(self) -> int:
        if not self.free:
            raise ControlError("no free relay ports")
        return self.free.popleft()

    def give(self, port: int) -> None:
        self.free.append(port)
