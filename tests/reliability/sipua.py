"""A small SIP user agent for the fault-injection tests: one UDP socket, a reader thread.

sipp runs a scenario to its end; these tests need to act between steps (kill a process,
stop a database) and to look at what each side received.  ``UA`` registers with digest
(MD5), places calls (answering our proxy's 407), answers calls (every INVITE gets 200 with
SDP, every BYE 200) and sends in-dialog requests along the dialog's route set.  Everything
it received is kept in ``requests`` and ``responses`` (parsed by the proxy's own parser).
"""

from __future__ import annotations

import hashlib
import itertools
import queue
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from sipproxy.sip.parser import Request, Response, parse_message
from sipproxy.sip.uri import parse_name_addr

DOMAIN = "example.com"
_seq = itertools.count(1)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _challenge(value: str) -> dict[str, str]:
    return {k.lower(): v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', value)}


def digest_header(challenge: str, method: str, uri: str, user: str, password: str) -> str:
    """The Authorization value answering one MD5 challenge (qop=auth when offered)."""
    c = _challenge(challenge)
    realm, nonce = c.get("realm", ""), c.get("nonce", "")
    ha1 = _md5(f"{user}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    out = f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm=MD5'
    if "auth" in c.get("qop", "").split(","):
        cnonce, nc = uuid.uuid4().hex[:8], "00000001"
        out += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
        resp = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
    else:
        resp = _md5(f"{ha1}:{nonce}:{ha2}")
    if "opaque" in c:
        out += f', opaque="{c["opaque"]}"'
    return out + f', response="{resp}"'


def sdp(port: int, ip: str = "127.0.0.1") -> str:
    return (f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def media_of(body: str | bytes) -> tuple[str, int]:
    """(address, port) of the first audio stream of an SDP body."""
    text = body.decode() if isinstance(body, bytes) else body
    ip = re.search(r"^c=IN IP4 (\S+)", text, re.M)
    port = re.search(r"^m=audio (\d+)", text, re.M)
    return (ip.group(1) if ip else "", int(port.group(1)) if port else 0)


@dataclass
class Dialog:
    """One side's view of an established call."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    route: list[str]
    cseq: int
    answer: Response | None = None  # the 2xx (caller side)
    extra: dict = field(default_factory=dict)


class UA:
    """One phone: ``user`` at 127.0.0.1:<a free port> registering with the proxy."""

    def __init__(self, user: str, password: str, proxy_port: int, domain: str = DOMAIN,
                 media_port: int = 0) -> None:
        self.user, self.password, self.domain = user, password, domain
        self.proxy = ("127.0.0.1", proxy_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.media_port = media_port or self.port + 1
        self.contact = f"<sip:{user}@127.0.0.1:{self.port}>"
        self.requests: list[Request] = []
        self.responses: queue.Queue[Response] = queue.Queue()
        self.dialogs: dict[str, Dialog] = {}  # call-id -> callee side dialogs
        self.answer_invites = True
        self.reg_call_id = uuid.uuid4().hex
        self.reg_cseq = 0
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    # -- I/O -------------------------------------------------------------------------------

    def send(self, text: str, dest: tuple[str, int] | None = None) -> None:
        self.sock.sendto(text.encode(), dest or self.proxy)

    def close(self) -> None:
        self._closed = True
        self.sock.close()

    def _read(self) -> None:
        while not self._closed:
            try:
                data, src = self.sock.recvfrom(65535)
            except OSError:
                return
            try:
                msg = parse_message(data)
            except Exception:  # noqa: BLE001 - not ours to judge here
                continue
            if isinstance(msg, Response):
                self.responses.put(msg)
            else:
                with self._lock:
                    self.requests.append(msg)
                self._serve(msg, src)

    def _serve(self, req: Request, src: tuple[str, int]) -> None:
        if req.method == "ACK":
            return
        if req.method == "INVITE" and not req.to.tag:
            if not self.answer_invites:
                return
            d = self.dialogs.get(req.call_id)
            if d is None:
                rr = req.headers.getall("record-route")
                d = Dialog(req.call_id, uuid.uuid4().hex[:10], req.from_.tag, str(req.to.uri),
                           str(req.from_.uri), parse_name_addr(req.headers.get("contact")).uri.__str__(),
                           list(rr), 0)
                d.extra["offer"] = req.body
                self.dialogs[req.call_id] = d
            body = sdp(self.media_port)
            self.send(self._reply(req, 200, "OK", d.local_tag, body=body, record_route=True), src)
            return
        tag = req.to.tag or uuid.uuid4().hex[:10]
        self.send(self._reply(req, 200, "OK", tag), src)

    def _reply(self, req: Request, status: int, reason: str, tag: str, body: str = "",
               record_route: bool = False) -> str:
        h = [f"SIP/2.0 {status} {reason}"]
        h += [f"Via: {v}" for v in req.headers.getall("via")]
        if record_route:
            h += [f"Record-Route: {v}" for v in req.headers.getall("record-route")]
        to = req.headers.get("to")
        if ";tag=" not in to:
            to += f";tag={tag}"
        h += [f"From: {req.headers.get('from')}", f"To: {to}", f"Call-ID: {req.call_id}",
              f"CSeq: {req.headers.get('cseq')}", f"Contact: {self.contact}"]
        if body:
            h.append("Content-Type: application/sdp")
        h.append(f"Content-Length: {len(body.encode())}")
        return "\r\n".join(h) + "\r\n\r\n" + body

    def wait_response(self, call_id: str, method: str, timeout: float = 5.0,
                      final: bool = True) -> Response | None:
        """The next response to ``method`` in ``call_id`` (a final one unless ``final`` is False)."""
        deadline = time.monotonic() + timeout
        kept = []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                try:
                    r = self.responses.get(timeout=left)
                except queue.Empty:
                    return None
                if r.call_id == call_id and r.cseq[1] == method and (r.status >= 200 or not final):
                    return r
                if r.call_id != call_id:
                    kept.append(r)
        finally:
            for r in kept:
                self.responses.put(r)

    def received(self, method: str, call_id: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == method and (call_id is None or r.call_id == call_id)]

    def wait_request(self, method: str, call_id: str | None = None, timeout: float = 5.0) -> Request | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received(method, call_id)
            if got:
                return got[-1]
            time.sleep(0.02)
        return None

    # -- requests --------------------------------------------------------------------------

    def _request(self, method: str, ruri: str, call_id: str, cseq: int, from_tag: str, to: str,
                 headers: list[str] = (), body: str = "", route: list[str] = ()) -> str:
        branch = f"z9hG4bK{uuid.uuid4().hex[:16]}"
        h = [f"{method} {ruri} SIP/2.0", f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport",
             "Max-Forwards: 70"]
        h += [f"Route: {r}" for r in route]
        h += [f"From: <sip:{self.user}@{self.domain}>;tag={from_tag}", f"To: {to}",
              f"Call-ID: {call_id}", f"CSeq: {cseq} {method}", f"Contact: {self.contact}", *headers]
        if body:
            h.append("Content-Type: application/sdp")
        h.append(f"Content-Length: {len(body.encode())}")
        return "\r\n".join(h) + "\r\n\r\n" + body

    def register(self, expires: int = 3600, timeout: float = 5.0) -> Response | None:
        """REGISTER (answering one 401); the final response, or None when none came."""
        ruri = f"sip:{self.domain}"
        to = f"<sip:{self.user}@{self.domain}>"
        tag = uuid.uuid4().hex[:8]
        extra = [f"Expires: {expires}"]
        self.reg_cseq += 1
        self.send(self._request("REGISTER", ruri, self.reg_call_id, self.reg_cseq, tag, to, extra))
        r = self.wait_response(self.reg_call_id, "REGISTER", timeout)
        if r is not None and r.status == 401:
            auth = digest_header(r.headers.get("www-authenticate"), "REGISTER", ruri, self.user, self.password)
            self.reg_cseq += 1
            self.send(self._request("REGISTER", ruri, self.reg_call_id, self.reg_cseq, tag, to,
                                    [*extra, f"Authorization: {auth}"]))
            r = self.wait_response(self.reg_call_id, "REGISTER", timeout)
        return r

    def call(self, callee: str, timeout: float = 5.0, body: str | None = None) -> tuple[Response | None, Dialog | None]:
        """INVITE ``callee@domain`` (answering one 407); ACK a 2xx.  (final response, dialog)."""
        call_id = uuid.uuid4().hex
        tag = uuid.uuid4().hex[:8]
        ruri = f"sip:{callee}@{self.domain}"
        to = f"<{ruri}>"
        body = sdp(self.media_port) if body is None else body
        self.send(self._request("INVITE", ruri, call_id, 1, tag, to, body=body))
        r = self.wait_response(call_id, "INVITE", timeout)
        cseq = 1
        if r is not None and r.status == 407:
            self._ack_error(r, ruri, 1)
            auth = digest_header(r.headers.get("proxy-authenticate"), "INVITE", ruri, self.user, self.password)
            cseq = 2
            self.send(self._request("INVITE", ruri, call_id, 2, tag, to, [f"Proxy-Authorization: {auth}"], body=body))
            r = self.wait_response(call_id, "INVITE", timeout)
        if r is None:
            return None, None
        if r.status >= 300:
            self._ack_error(r, ruri, cseq)
            return r, None
        route = list(reversed(r.headers.getall("record-route")))
        d = Dialog(call_id, tag, r.to.tag, f"sip:{self.user}@{self.domain}", ruri,
                   str(parse_name_addr(r.headers.get("contact")).uri), route, cseq, answer=r)
        self.in_dialog(d, "ACK", cseq=cseq)
        return r, d

    def _ack_error(self, r: Response, ruri: str, cseq: int) -> None:
        """The ACK for a non-2xx final answer (same branch as the INVITE: hop by hop)."""
        via = r.headers.get("via")
        h = [f"ACK {ruri} SIP/2.0", f"Via: {via}", "Max-Forwards: 70", f"From: {r.headers.get('from')}",
             f"To: {r.headers.get('to')}", f"Call-ID: {r.call_id}", f"CSeq: {cseq} ACK", "Content-Length: 0"]
        self.send("\r\n".join(h) + "\r\n\r\n")

    def in_dialog(self, d: Dialog, method: str, cseq: int | None = None, headers: list[str] = (),
                  body: str = "") -> None:
        """Send ``method`` within ``d`` along its route set (loose routing)."""
        if cseq is None:
            d.cseq += 1
            cseq = d.cseq
        to = f"<{d.remote_uri}>;tag={d.remote_tag}"
        text = self._request(method, d.remote_target, d.call_id, cseq, d.local_tag, to, list(headers),
                             body=body, route=d.route)
        if d.route:
            dest = parse_name_addr(d.route[0]).uri
        else:
            dest = parse_name_addr(f"<{d.remote_target}>").uri
        self.send(text, (dest.host, dest.port or 5060))

    def bye(self, d: Dialog, timeout: float = 5.0) -> Response | None:
        self.in_dialog(d, "BYE")
        return self.wait_response(d.call_id, "BYE", timeout)

    def callee_dialog(self, call_id: str) -> Dialog:
        """The callee side's dialog of ``call_id`` as a caller-like Dialog (to send a BYE)."""
        d = self.dialogs[call_id]
        return Dialog(d.call_id, d.local_tag, d.remote_tag, d.local_uri, d.remote_uri, d.remote_target,
                      list(d.route), 100)
