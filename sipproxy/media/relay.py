"""The proxy's client of the media relays (``python -m mediaproxy``), over their control port.

Several relays may be configured (``[sipproxy] media_relays``; empty: ``[mediaproxy]
control``).  A new call goes to the live relay holding the fewest of this proxy's calls; a
relay that refuses connections or stops answering is skipped for ``retry_interval`` seconds,
so new calls go to the others, and is probed every ``retry_interval`` seconds until it takes a
connection again ("media relay ... is back": new calls go to it again).  A relay that closes
its control connection has ended (its process died or stopped), and with it the media of its
calls: they are handed to ``on_lost`` (the proxy ends each with BYE both ways and a Reason,
see :class:`ProxyMedia`).  A relay that only stops answering may still carry media: its calls
are left alone, and their next offer (a re-INVITE) moves them to a live relay.

How the proxy uses it (gevent-friendly: every call blocks only the calling greenlet)::

    from sipproxy.media.relay import MediaRelays, MediaRelayError, should_relay

    relays = MediaRelays.from_config(config, on_timeout=on_media_timeout)

    if should_relay(config["sipproxy"]["media_relay"], caller_nat, callee_nat, account_flag):
        # Every SDP of the call goes through the relay; ``sender_tag`` is the tag of the party
        # whose SDP it is, ``peer_tag`` the other party's ("" while not known yet).
        # INVITE / re-INVITE / UPDATE carrying an offer, from the From party:
        body = relays.offer(call_id, body, sender_tag=from_tag, peer_tag=to_tag)
        # 183 / 200 carrying the answer to it (the To party answers):
        body = relays.answer(call_id, body, sender_tag=to_tag, peer_tag=from_tag)
        # late offer: INVITE without SDP, the offer is in the 200 and the answer in the ACK:
        body_200 = relays.offer(call_id, body_200, sender_tag=to_tag, peer_tag=from_tag)
        body_ack = relays.answer(call_id, body_ack, sender_tag=from_tag, peer_tag=to_tag)
        dialog.media_relay = relays.relay_of(call_id) or ""   # keep it with the dialog

    # BYE, CANCEL, a final failure of the INVITE: release the ports, get the summary
    summary = relays.remove(call_id, reason="bye", relay=dialog.media_relay or None)

    def on_media_timeout(event):   # called in its own greenlet
        # send BYE (Reason: media timeout) to both parties, then:
        summary = relays.remove(event.call_id, reason="media timeout")

    # (the proxy does this in sipproxy.dialog.control.CallControl, set as ProxyMedia.call_control)

For the proxy's media seam (``Proxy(media=...)`` calling ``offer(proxy, req)``,
``answer(proxy, req, response)``, ``ack(proxy, req)``, ``release(proxy, req)``),
:class:`ProxyMedia` does all of the above on the SIP messages themselves::

    media = ProxyMedia(relays, config["sipproxy"]["media_relay"], on_timeout=bye_both_sides)
    proxy = Proxy(..., media=media)

``offer``/``answer`` return the body with the relay's address and ports (same type, str or
bytes, as given); bodies with no media lines come back unchanged.  They raise
:class:`MediaRelayError` when no relay is reachable or the relay refuses the SDP, and
:class:`sipproxy.sip.sdp.SdpError` for an SDP that cannot be read: the proxy decides whether to
forward the body unchanged or answer 488/500.  ``remove`` never raises; it answers the
summary (dict, see ``docs/mediaproxy.md``) or None.  The summary is also stored by the relay
in the ``media_sessions`` table.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent import socket
from gevent.event import AsyncResult

from sipproxy.proxy.nat import sender_behind_nat
from sipproxy.sip import sdp as sdplib

log = logging.getLogger("sipproxy.mediarelay")

__all__ = ["MediaRelayError", "MediaTimeout", "MediaRelays", "ProxyMedia", "should_relay"]


class MediaRelayError(Exception):
    """No relay could take the SDP (none reachable, or the relay refused it)."""


@dataclass(frozen=True)
class MediaTimeout:
    """A relay saw no media on a stream for its media timeout: end the call."""

    call_id: str
    from_tag: str
    to_tag: str
    stream: int
    reason: str
    relay: str


def should_relay(setting: str, caller_behind_nat: bool, callee_behind_nat: bool,
                 account_flag: bool = False) -> bool:
    """The ``[sipproxy] media_relay`` policy: "always", "nat" (either party behind NAT, or the
    account asks for it) or "never"."""
    if setting == "always":
        return True
    if setting == "nat":
        return caller_behind_nat or callee_behind_nat or account_flag
    return False


class RelayLink:
    """One relay's control connection, opened on first use and re-opened after failures."""

    def __init__(self, address: str, owner: MediaRelays) -> None:
        from ngnpro.models.config import parse_hostport

        self.address = address
        self.host, self.port = parse_hostport(address, "media_relays")
        self.owner = owner
        self.sock: Any = None
        self.reader: gevent.Greenlet | None = None
        self.pending: dict[int, AsyncResult] = {}
        self.down_until = 0.0
        self.calls = 0
        self.prober: gevent.Greenlet | None = None  # probing a relay that went down

    def usable(self) -> bool:
        return self.sock is not None or time.monotonic() >= self.down_until

    def _connect(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.owner.timeout)
        except OSError as exc:
            self._down(f"cannot connect: {exc}")
            raise MediaRelayError(f"relay {self.address}: cannot connect ({exc})") from None
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.reader = gevent.spawn(self._read, sock)
        log.info("connected to media relay %s", self.address)

    def _down(self, why: str, ended: bool = False) -> None:
        """The relay is unusable for ``retry_interval``; ``ended``: it closed the control
        connection, so its calls lost their media (handed to ``on_lost``)."""
        was_up = self.sock is not None
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
        self.down_until = time.monotonic() + self.owner.retry_interval
        if was_up or self.prober is None:
            log.warning("media relay %s unavailable (%s); retrying in %ss", self.address, why,
                        self.owner.retry_interval)
        pending, self.pending = self.pending, {}
        for result in pending.values():
            result.set_exception(MediaRelayError(f"relay {self.address}: {why}"))
        if ended:
            self.owner._lost(self)
        if self.prober is None:
            self.prober = gevent.spawn(self._probe)

    def _probe(self) -> None:
        """Reconnect every ``retry_interval`` until the relay takes the connection again and
        answers a ping."""
        try:
            while self.sock is None:
                gevent.sleep(max(0.0, self.down_until - time.monotonic()) or self.owner.retry_interval)
                if self.sock is not None:
                    break
                try:
                    self._connect()
                    # a frozen relay's kernel still accepts connections: back only when it answers
                    self.request({"command": "ping"})
                except MediaRelayError:
                    continue
                log.info("media relay %s is back", self.address)
        finally:
            self.prober = None

    def _read(self, sock: Any) -> None:
        buf = b""
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self._dispatch(line)
        except OSError:
            pass
        if self.sock is sock:
            self._down("connection closed", ended=True)

    def _dispatch(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
        except ValueError:
            log.warning("media relay %s sent a bad line", self.address)
            return
        if not isinstance(msg, dict):
            return
        if msg.get("event") == "timeout":
            ev = MediaTimeout(str(msg.get("call_id", "")), str(msg.get("from_tag", "")),
                              str(msg.get("to_tag", "")), int(msg.get("stream", 0) or 0),
                              str(msg.get("reason", "media timeout")), self.address)
            if self.owner.on_timeout is not None:
                gevent.spawn(self.owner.on_timeout, ev)
            return
        result = self.pending.pop(msg.get("id"), None)
        if result is not None:
            result.set(msg)

    def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its reply; :class:`MediaRelayError` on failure."""
        if self.sock is None:
            if time.monotonic() < self.down_until:
                raise MediaRelayError(f"relay {self.address} is down")
            self._connect()
        rid = next(self.owner.ids)
        msg = {"id": rid, **msg}
        result = AsyncResult()
        self.pending[rid] = result
        try:
            self.sock.sendall(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
        except OSError as exc:
            self.pending.pop(rid, None)
            self._down(f"send failed: {exc}")
            raise MediaRelayError(f"relay {self.address}: send failed") from None
        try:
            return result.get(timeout=self.owner.timeout)
        except gevent.Timeout:
            self.pending.pop(rid, None)
            self._down("no answer")
            raise MediaRelayError(f"relay {self.address}: no answer within {self.owner.timeout}s") from None

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()
        if self.reader is not None:
            self.reader.kill(block=False)
        if self.prober is not None:
            self.prober.kill(block=False)


class MediaRelays:
    """Every configured relay, and which call is on which."""

    def __init__(self, addresses: list[str], on_timeout: Callable[[MediaTimeout], Any] | None = None,
                 timeout: float = 2.0, retry_interval: float = 5.0, ice: str = "replace",
                 on_lost: Callable[[str, str], Any] | None = None) -> None:
        if not addresses:
            raise ValueError("no media relay addresses")
        self.on_timeout = on_timeout
        #: ``on_lost(call_id, relay)``, in a greenlet per call, for each call on a relay that ended
        self.on_lost = on_lost
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.ice = ice
        self.ids = itertools.count(1)
        self.links = [RelayLink(a, self) for a in addresses]
        self.calls: dict[str, RelayLink] = {}
        self._rr = 0

    @classmethod
    def from_config(cls, config: Any, on_timeout: Callable[[MediaTimeout], Any] | None = None,
                    **kwargs: Any) -> MediaRelays:
        addresses = list(config["sipproxy"]["media_relays"]) or [config["mediaproxy"]["control"]]
        return cls(addresses, on_timeout, **kwargs)

    def _lost(self, link: RelayLink) -> None:
        """``link``'s relay ended: forget its calls and hand each to ``on_lost``."""
        lost = [call_id for call_id, x in self.calls.items() if x is link]
        for call_id in lost:
            del self.calls[call_id]
        link.calls = 0
        if lost:
            log.warning("media relay %s ended with %d calls on it", link.address, len(lost))
        if self.on_lost is not None:
            for call_id in lost:
                gevent.spawn(self.on_lost, call_id, link.address)

    def relay_of(self, call_id: str) -> str | None:
        link = self.calls.get(call_id)
        return link.address if link else None

    def _candidates(self, call_id: str) -> list[RelayLink]:
        """The call's own relay first, then the live ones by load (round robin among equals)."""
        current = self.calls.get(call_id)
        self._rr = (self._rr + 1) % len(self.links)
        order = self.links[self._rr:] + self.links[:self._rr]
        live = sorted((x for x in order if x.usable() and x is not current), key=lambda x: x.calls)
        return ([current] if current is not None and current.usable() else []) + live

    def _update(self, link: RelayLink, call_id: str, direction: str, from_tag: str, to_tag: str,
                streams: list[dict[str, Any]]) -> dict[str, Any]:
        reply = link.request({"command": "update", "call_id": call_id, "from_tag": from_tag,
                              "to_tag": to_tag, "direction": direction, "streams": streams})
        if not reply.get("ok"):
            raise MediaRelayError(f"relay {link.address} refused the SDP: {reply.get('error')}")
        return reply

    def offer(self, call_id: str, body: str | bytes, sender_tag: str, peer_tag: str = "") -> str | bytes:
        """Put the relay into an SDP offer; the call goes to a relay if it is not on one."""
        desc = sdplib.parse(body)
        if not desc.media:
            return body
        streams = sdplib.relay_streams(desc)
        errors = []
        for link in self._candidates(call_id):
            try:
                reply = self._update(link, call_id, "offer", sender_tag, peer_tag, streams)
            except MediaRelayError as exc:
                if link.sock is not None:  # the relay answered: it refuses this SDP
                    raise
                errors.append(str(exc))
                continue
            old = self.calls.get(call_id)
            if old is not link:
                if old is not None:
                    old.calls -= 1
                link.calls += 1
                self.calls[call_id] = link
            return sdplib.rewrite(body, reply["ip"], reply["streams"], self.ice)
        raise MediaRelayError("no media relay available: " + ("; ".join(errors) or "all down"))

    def answer(self, call_id: str, body: str | bytes, sender_tag: str, peer_tag: str) -> str | bytes:
        """Put the relay into the SDP answer of the call's last offer."""
        desc = sdplib.parse(body)
        if not desc.media:
            return body
        link = self.calls.get(call_id)
        if link is None:
            raise MediaRelayError(f"call {call_id!r} has no relay session to answer")
        reply = self._update(link, call_id, "answer", peer_tag, sender_tag, sdplib.relay_streams(desc))
        return sdplib.rewrite(body, reply["ip"], reply["streams"], self.ice)

    def remove(self, call_id: str, reason: str = "bye", relay: str | None = None) -> dict[str, Any] | None:
        """End the call's relay session and answer its summary (None if there was none)."""
        link = self.calls.pop(call_id, None)
        if link is not None:
            link.calls -= 1
            targets = [link]
        else:  # e.g. a restarted proxy: the relay named by the dialog, else every live one
            targets = [x for x in self.links if x.address == relay] or [x for x in self.links if x.usable()]
        for target in targets:
            try:
                reply = target.request({"command": "remove", "call_id": call_id, "reason": reason})
            except MediaRelayError as exc:
                log.warning("cannot remove %s: %s", call_id, exc)
                continue
            if reply.get("ok"):
                return reply.get("summary")
        return None

    def close(self) -> None:
        for link in self.links:
            link.close()


# -- the proxy's media seam ------------------------------------------------------------------

def _is_sdp(message: Any) -> bool:
    """The message carries an SDP body (the relay's and the MSRP ACM's test)."""
    ctype = (message.headers.get("content-type") or "").split(";")[0].strip().lower()
    return bool(message.body) and ctype == "application/sdp"


class ProxyMedia:
    """The relay engaged through the proxy's seam, on SIP requests and responses.

    ``policy`` is ``[sipproxy] media_relay``; ``decide(request) -> bool``, when given,
    replaces it (e.g. to add the callee's registration NAT flag or a per-account setting).
    An offer in an INVITE is rewritten for the callee; the answer in its 18x/2xx for the
    caller; a late offer (INVITE without SDP) is taken from the 2xx and its answer from the
    ACK.  A failed initial INVITE, CANCEL and BYE release the session; a failed re-INVITE
    keeps it.  A relay failure leaves the body unchanged (the call goes on unrelayed).
    """

    def __init__(self, relays: MediaRelays, policy: str = "nat",
                 on_timeout: Callable[[MediaTimeout], Any] | None = None,
                 decide: Callable[[Any], bool] | None = None) -> None:
        self.relays = relays
        self.policy = policy
        self.decide = decide
        self.engaged: dict[str, bool] = {}  # call-id -> the INVITE carried no SDP (late offer)
        #: set by the proxy (``sipproxy.dialog.control.CallControl.on_media_timeout``): ends the call
        #: with BYE both ways; without it a timeout only releases the relay session
        self.call_control: Callable[[MediaTimeout], Any] | None = None
        #: set by the proxy (``CallControl.on_relay_lost``): ends a call whose relay ended
        self.relay_lost: Callable[[str], Any] | None = None
        self._gone: set[str] = set()  # calls being ended because their relay ended
        if on_timeout is not None:
            relays.on_timeout = on_timeout
        elif relays.on_timeout is None:
            relays.on_timeout = self._timed_out
        if getattr(relays, "on_lost", None) is None:
            relays.on_lost = self._lost

    def _timed_out(self, event: MediaTimeout) -> None:
        if self.call_control is not None:
            self.call_control(event)
        else:
            self.end(event.call_id, event.reason)

    def _lost(self, call_id: str, relay: str) -> None:
        """The call's relay ended (its media with it): the proxy ends the call."""
        self.engaged.pop(call_id, None)
        if self.relay_lost is not None:
            self._gone.add(call_id)
            try:
                self.relay_lost(call_id)
            finally:
                self._gone.discard(call_id)

    def end(self, call_id: str, reason: str) -> dict[str, Any] | None:
        """The proxy ended the call itself (call control): release its relay session."""
        self.engaged.pop(call_id, None)
        if call_id in self._gone:
            return None  # its relay ended: no session left to release anywhere
        return self.relays.remove(call_id, reason=reason)

    def _engage(self, req: Any) -> bool:
        if self.decide is not None:
            return bool(self.decide(req))
        return should_relay(self.policy, sender_behind_nat(req), False)

    def _rewrite(self, msg: Any, call_id: str, kind: str, sender: str, peer: str) -> None:
        try:
            if kind == "offer":
                msg.body = self.relays.offer(call_id, msg.body, sender_tag=sender, peer_tag=peer)
            else:
                msg.body = self.relays.answer(call_id, msg.body, sender_tag=sender, peer_tag=peer)
        except (MediaRelayError, sdplib.SdpError) as exc:
            log.warning("call %s: media not relayed (%s)", call_id, exc)

    def offer(self, proxy: Any, req: Any) -> None:
        call_id, from_tag, to_tag = req.call_id or "", req.from_.tag or "", req.to.tag or ""
        if call_id not in self.engaged:
            if to_tag or not self._engage(req):  # a re-INVITE of a call we do not relay
                return
        sdp = _is_sdp(req)
        self.engaged[call_id] = not sdp
        if sdp:
            self._rewrite(req, call_id, "offer", from_tag, to_tag)

    def answer(self, proxy: Any, req: Any, response: Any) -> None:
        call_id = req.call_id or ""
        late = self.engaged.get(call_id)
        if late is None or not _is_sdp(response):
            return
        from_tag, to_tag = req.from_.tag or "", response.to.tag or ""
        if late:  # the offer is in the 2xx; its answer comes in the ACK
            if 200 <= response.status < 300:
                self._rewrite(response, call_id, "offer", to_tag, from_tag)
        else:
            self._rewrite(response, call_id, "answer", to_tag, from_tag)

    def ack(self, proxy: Any, req: Any) -> None:
        call_id = req.call_id or ""
        if self.engaged.get(call_id) and _is_sdp(req):
            self.engaged[call_id] = False
            self._rewrite(req, call_id, "answer", req.from_.tag or "", req.to.tag or "")

    def release(self, proxy: Any, req: Any, reason: str = "") -> dict[str, Any] | None:
        call_id = req.call_id or ""
        if call_id not in self.engaged:
            return None
        if req.method == "INVITE" and req.to.tag:
            return None  # a failed re-INVITE: the call and its media go on
        del self.engaged[call_id]
        return self.relays.remove(call_id, reason=reason or ("bye" if req.method == "BYE" else "failed"))
