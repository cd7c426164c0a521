"""The proxy's side of MSRP ACM (RFC 6135): reserve a session on the ACM (the MSRP relay
service, ``python -m mediaproxy.msrp`` with ``[msrprelay] control``) and rewrite the
``a=path`` of offer and answer to it.

It plugs into the proxy's media seam like the RTP relay client (:mod:`.relay`) and uses the
same policy and NAT test (``[sipproxy] media_relay``; "nat": the caller behind NAT): for an
INVITE whose SDP offers ``m=message``, the caller's path goes to the ACM (``offer``), the
offer toward the callee carries the ACM's callee-facing URI; the answer's path goes to the
ACM (``answer``) and the answer toward the caller carries the ACM's caller-facing URI.
Both carry ``a=setup:passive`` for the ACM, so both end-points connect to it.  BYE, CANCEL
and a failed INVITE remove the session.  An SDP without message streams is left to the RTP
relay (:class:`CombinedMedia` sends each SDP to the one that handles it).

The control protocol (one JSON object a line over TCP) is documented in
``mediaproxy/msrp/control.py`` and docs/msrp.md.
"""

from __future__ import annotations

import itertools
import json
import logging
from typing import Any

from gevent import socket
from gevent.lock import Semaphore

from sipproxy.media.msrp_sdp import MsrpSdpError, message_streams, rewrite_paths
from sipproxy.media.relay import _is_sdp, should_relay
from sipproxy.proxy.nat import sender_behind_nat

log = logging.getLogger("sipproxy.msrpacm")

__all__ = ["AcmError", "AcmClient", "ProxyAcm", "CombinedMedia"]


class AcmError(Exception):
    """The ACM could not be reached or refused the request."""


class AcmClient:
    """One control connection to the ACM, opened on first use, re-opened after a failure;
    one request at a time."""

    def __init__(self, address: str, timeout: float = 2.0) -> None:
        from ngnpro.models.config import parse_hostport

        self.address = address
        self.host, self.port = parse_hostport(address, "msrp_acm")
        self.timeout = timeout
        self.sock: Any = None
        self.buf = b""
        self.lock = Semaphore()
        self.ids = itertools.count(1)

    def call(self, command: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            for attempt in (1, 2):  # a connection the ACM closed meanwhile: once more on a new one
                try:
                    return self._call(command, fields)
                except OSError as exc:
                    self._close()
                    if attempt == 2:
                        raise AcmError(f"ACM {self.address}: {exc}") from None
        raise AssertionError("unreachable")

    def _call(self, command: str, fields: dict[str, Any]) -> dict[str, Any]:
        if self.sock is None:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self.buf = b""
        rid = next(self.ids)
        self.sock.sendall(json.dumps({"id": rid, "command": command, **fields}).encode() + b"\n")
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionResetError("ACM closed the control connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        answer = json.loads(line)
        if answer.get("id") != rid:
            raise ConnectionResetError("ACM answered another request")
        if not answer.get("ok"):
            raise AcmError(f"ACM refused {command}: {answer.get('error')}")
        return answer

    def _close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None


def has_message_stream(message: Any) -> bool:
    """The SIP message carries an SDP with an ``m=message`` line (cheap test first)."""
    if not _is_sdp(message):
        return False
    body = message.body if isinstance(message.body, bytes) else message.body.encode()
    return b"m=message" in body


class ProxyAcm:
    """The ACM engaged through the proxy's media seam (offer/answer/ack/release/end)."""

    def __init__(self, client: AcmClient, policy: str = "nat") -> None:
        self.client = client
        self.policy = policy
        self.engaged: dict[str, str] = {}  # call-id -> the caller's tag (the session's key at the ACM)

    def _rewrite(self, msg: Any, command: str, call_id: str, from_tag: str) -> bool:
        try:
            streams = [s for s in message_streams(msg.body) if s.port]
            if not streams:
                return False
            answer = self.client.call(command, call_id=call_id, from_tag=from_tag, path=streams[0].path)
            msg.body = rewrite_paths(msg.body, {streams[0].index: answer["path"]})
            return True
        except (AcmError, MsrpSdpError, ValueError, KeyError) as exc:
            log.warning("call %s: MSRP not through the ACM (%s)", call_id, exc)
            return False

    def offer(self, proxy: Any, req: Any) -> None:
        call_id, from_tag = req.call_id or "", req.from_.tag or ""
        if not has_message_stream(req):
            return
        caller_tag = self.engaged.get(call_id)
        if caller_tag is None:
            if req.to.tag or not should_relay(self.policy, sender_behind_nat(req), False):
                return
            if self._rewrite(req, "offer", call_id, from_tag):
                self.engaged[call_id] = from_tag
            return
        # a re-INVITE: the caller's SDP updates the caller's side, the callee's the callee's
        self._rewrite(req, "offer" if from_tag == caller_tag else "answer", call_id, caller_tag)

    def answer(self, proxy: Any, req: Any, response: Any) -> None:
        call_id = req.call_id or ""
        caller_tag = self.engaged.get(call_id)
        if caller_tag is None or not has_message_stream(response):
            return
        # the answer comes from the other party than the offer's sender
        sender_is_callee = (req.from_.tag or "") == caller_tag
        self._rewrite(response, "answer" if sender_is_callee else "offer", call_id, caller_tag)

    def ack(self, proxy: Any, req: Any) -> None:
        """(A late offer -- INVITE without SDP -- is not taken through the ACM.)"""

    def release(self, proxy: Any, req: Any, reason: str = "") -> dict[str, Any] | None:
        call_id = req.call_id or ""
        if call_id not in self.engaged or (req.method == "INVITE" and req.to.tag):
            return None
        return self.end(call_id, reason or ("bye" if req.method == "BYE" else "failed"))

    def end(self, call_id: str, reason: str) -> dict[str, Any] | None:
        from_tag = self.engaged.pop(call_id, None)
        if from_tag is None:
            return None
        try:
            return self.client.call("remove", call_id=call_id, from_tag=from_tag, reason=reason).get("summary")
        except AcmError as exc:
            log.warning("call %s: ACM session not removed (%s)", call_id, exc)
            return None


class CombinedMedia:
    """The RTP relay (``rtp``, a ``ProxyMedia``) and the ACM (``acm``) at one seam: an SDP
    with message streams goes to the ACM, any other to the RTP relay."""

    def __init__(self, rtp: Any, acm: ProxyAcm) -> None:
        self.rtp = rtp
        self.acm = acm
        self.relays = getattr(rtp, "relays", None)

    # the proxy sets these on its seam: they belong to the RTP relay client
    @property
    def call_control(self) -> Any:
        return self.rtp.call_control

    @call_control.setter
    def call_control(self, value: Any) -> None:
        self.rtp.call_control = value

    @property
    def relay_lost(self) -> Any:
        return self.rtp.relay_lost

    @relay_lost.setter
    def relay_lost(self, value: Any) -> None:
        self.rtp.relay_lost = value

    def offer(self, proxy: Any, req: Any) -> None:
        if has_message_stream(req) or (req.call_id or "") in self.acm.engaged:
            self.acm.offer(proxy, req)
        else:
            self.rtp.offer(proxy, req)

    def answer(self, proxy: Any, req: Any, response: Any) -> None:
        if (req.call_id or "") in self.acm.engaged:
            self.acm.answer(proxy, req, response)
        else:
            self.rtp.answer(proxy, req, response)

    def ack(self, proxy: Any, req: Any) -> None:
        self.rtp.ack(proxy, req)

    def release(self, proxy: Any, req: Any, reason: str = "") -> dict[str, Any] | None:
        if (req.call_id or "") in self.acm.engaged:
            return self.acm.release(proxy, req, reason)
        return self.rtp.release(proxy, req, reason)

    def end(self, call_id: str, reason: str) -> dict[str, Any] | None:
        if call_id in self.acm.engaged:
            return self.acm.end(call_id, reason)
        return self.rtp.end(call_id, reason)
