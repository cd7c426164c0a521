"""The presence bench's load generator: publishers and watchers in one asyncio loop.

Why not sipp: a point needs every NOTIFY matched to the PUBLISH that caused it (its note),
per watcher, with the time between them; sipp can time a request and its own responses,
not a request and the NOTIFYs another UA receives.  Why asyncio on plain UDP sockets: 1,100
UAs fit in one process, and the accounts are spread over ``sockets`` source ports, so a
proxy whose workers share the port by SO_REUSEPORT gets the load on all of them (one
socket would pin every packet to one worker).

Every request is digest-authenticated (MD5, qop=auth): the first one of an account takes
the server's challenge, later ones reuse its nonce with the next nonce-count, as a phone
does; a new challenge (stale nonce) is answered once more.  Each NOTIFY is answered 200 at
once and kept with its arrival time, its watcher (by Call-ID) and the note of its body.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import time
import uuid
from dataclasses import dataclass, field

DOMAIN = "bench.example"
COMPACT = {"i": "call-id", "v": "via", "f": "from", "t": "to", "l": "content-length",
           "c": "content-type", "m": "contact", "o": "event", "e": "content-encoding"}
NOTE_RE = re.compile(r"<(?:[\w.-]+:)?note\b[^>]*>([^<]*)</")
_TAG_RE = re.compile(r";\s*tag=([^;>\s]+)")
_CHALLENGE_RE = re.compile(r'(\w+)=("[^"]*"|[^,\s]+)')
PIDF = ('<?xml version="1.0" encoding="UTF-8"?>\n<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'entity="sip:{user}@{domain}"><tuple id="t1"><status><basic>open</basic></status>'
        "<note>{note}</note></tuple></presence>")


def parse(data: bytes) -> tuple[str, dict[str, list[str]], str]:
    """(start line, headers by lowercase full name, body) of one SIP message."""
    head, _, body = data.decode("utf-8", "replace").partition("\r\n\r\n")
    lines = head.split("\r\n")
    hdrs: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        hdrs.setdefault(COMPACT.get(key, key), []).append(value.strip())
    return lines[0], hdrs, body


def _one(hdrs: dict[str, list[str]], name: str) -> str:
    return hdrs.get(name, [""])[0]


@dataclass
class Account:
    """One UA: its credentials, its socket and the digest state it reuses."""

    user: str
    password: str
    sock: int
    challenge: dict[str, str] = field(default_factory=dict)
    proxy_auth: bool = True
    nc: int = 0
    etag: str = ""
    busy: bool = False

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@{DOMAIN}"

    def authorization(self, method: str, uri: str) -> str:
        """The (Proxy-)Authorization header for the kept challenge, nonce-count one up."""
        if not self.challenge:
            return ""
        c = self.challenge
        self.nc += 1
        nc = f"{self.nc:08x}"
        cnonce = uuid.uuid4().hex[:16]
        ha1 = hashlib.md5(f"{self.user}:{c['realm']}:{self.password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
        qop = "auth" if "auth" in c.get("qop", "").split(",") else ""
        if qop:
            resp = hashlib.md5(f"{ha1}:{c['nonce']}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
        else:
            resp = hashlib.md5(f"{ha1}:{c['nonce']}:{ha2}".encode()).hexdigest()
        value = (f'Digest username="{self.user}", realm="{c["realm"]}", nonce="{c["nonce"]}", '
                 f'uri="{uri}", response="{resp}", algorithm=MD5')
        if qop:
            value += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
        if "opaque" in c:
            value += f', opaque="{c["opaque"]}"'
        name = "Proxy-Authorization" if self.proxy_auth else "Authorization"
        return f"{name}: {value}\r\n"

    def take_challenge(self, status: int, hdrs: dict[str, list[str]]) -> bool:
        """Keep the MD5 challenge of a 401/407; False when there is none to answer."""
        values = hdrs.get("proxy-authenticate" if status == 407 else "www-authenticate", [])
        for v in values:
            params = {k.lower(): x.strip('"') for k, x in _CHALLENGE_RE.findall(v)}
            if params.get("algorithm", "MD5").upper() == "MD5" and "nonce" in params:
                self.challenge, self.nc, self.proxy_auth = params, 0, status == 407
                return True
        return False


@dataclass
class Notify:
    """One NOTIFY received: when, for which subscription, with which note and state."""

    at: float
    call_id: str
    note: str | None
    state: str


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, gen: LoadGen) -> None:
        self.gen = gen
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.gen.received(self, data, addr)


class LoadGen:
    """Publishers and watchers on ``sockets`` UDP sockets talking to ``server``."""

    def __init__(self, server: tuple[str, int], publishers: list[tuple[str, str]],
                 watchers: list[tuple[str, str]], sockets: int = 32) -> None:
        self.server = server
        self.publishers = [Account(u, p, i % sockets) for i, (u, p) in enumerate(publishers)]
        self.watchers = [Account(u, p, i % sockets) for i, (u, p) in enumerate(watchers)]
        self.nsockets = sockets
        self.endpoints: list[_Endpoint] = []
        self.pending: dict[tuple[str, int], asyncio.Future] = {}
        #: Call-ID of each watcher's subscription -> (watcher index, publisher index)
        self.subscriptions: dict[str, tuple[int, int]] = {}
        self.notifies: list[Notify] = []
        self._seen: set[tuple[str, str]] = set()
        self.retransmits = 0
        #: NOTIFYs received again (the server did not get our 200 in time: its retransmission)
        self.notify_repeats = 0
        #: 401/407 answered: first requests, and nonces the server no longer takes
        self.challenges = 0
        self._ids = itertools.count(1)

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self.nsockets):
            _, proto = await loop.create_datagram_endpoint(lambda: _Endpoint(self), local_addr=("127.0.0.1", 0))
            self.endpoints.append(proto)

    def close(self) -> None:
        for ep in self.endpoints:
            if ep.transport:
                ep.transport.close()

    def _port(self, acc: Account) -> int:
        return self.endpoints[acc.sock].transport.get_extra_info("sockname")[1]

    # -- receiving ---------------------------------------------------------------------------

    def received(self, ep: _Endpoint, data: bytes, addr: tuple[str, int]) -> None:
        now = time.monotonic()
        try:
            start, hdrs, body = parse(data)
        except ValueError:
            return
        if start.startswith("SIP/2.0 "):
            cseq = _one(hdrs, "cseq").split()
            key = (_one(hdrs, "call-id"), int(cseq[0]) if cseq else 0)
            fut = self.pending.get(key)
            status = int(start.split()[1])
            if fut is not None and not fut.done() and status >= 200:
                fut.set_result((status, hdrs, body))
            return
        method = start.split(" ", 1)[0]
        reply = (f"SIP/2.0 {'200 OK' if method == 'NOTIFY' else '405 Method Not Allowed'}\r\n"
                 + "".join(f"Via: {v}\r\n" for v in hdrs.get("via", []))
                 + f"From: {_one(hdrs, 'from')}\r\nTo: {_one(hdrs, 'to')}\r\n"
                 f"Call-ID: {_one(hdrs, 'call-id')}\r\nCSeq: {_one(hdrs, 'cseq')}\r\nContent-Length: 0\r\n\r\n")
        ep.transport.sendto(reply.encode(), addr)
        if method != "NOTIFY":
            return
        key = (_one(hdrs, "call-id"), _one(hdrs, "cseq"))
        if key in self._seen:  # a retransmission: our 200 was late or lost
            self.notify_repeats += 1
            return
        self._seen.add(key)
        m = NOTE_RE.search(body)
        self.notifies.append(Notify(now, key[0], m.group(1) if m else None,
                                    _one(hdrs, "subscription-state").split(";")[0].strip().lower()))

    # -- sending -----------------------------------------------------------------------------

    async def request(self, acc: Account, method: str, ruri: str, to: str, extra: str = "",
                      body: str = "", call_id: str | None = None, timeout: float = 8.0,
                      ) -> tuple[int, dict[str, list[str]], float]:
        """Send ``method`` (answering up to two challenges) with UDP retransmissions at
        0.5, 1, 2, 4 s; (final status, headers, monotonic time of the first send).  Status 0:
        no answer within ``timeout``."""
        call_id = call_id or f"pb{next(self._ids)}-{uuid.uuid4().hex[:12]}"
        ftag = uuid.uuid4().hex[:10]
        ep = self.endpoints[acc.sock]
        port = self._port(acc)
        first = 0.0
        status, hdrs = 0, {}
        for attempt in range(3):
            cseq = next(self._ids)
            msg = (f"{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};rport;"
                   f"branch=z9hG4bK{uuid.uuid4().hex[:16]}\r\nMax-Forwards: 70\r\n"
                   f"From: <{acc.uri}>;tag={ftag}\r\nTo: <{to}>\r\nCall-ID: {call_id}\r\n"
                   f"CSeq: {cseq} {method}\r\nContact: <sip:{acc.user}@127.0.0.1:{port}>\r\n"
                   f"{acc.authorization(method, ruri)}{extra}Content-Length: {len(body.encode())}\r\n\r\n{body}")
            data = msg.encode()
            fut: asyncio.Future = asyncio.get_running_loop().create_future()
            self.pending[(call_id, cseq)] = fut
            sent = time.monotonic()
            first = first or sent
            try:
                wait, deadline = 0.5, sent + timeout
                ep.transport.sendto(data, self.server)
                while True:
                    try:
                        status, hdrs, _ = await asyncio.wait_for(asyncio.shield(fut), wait)
                        break
                    except TimeoutError:
                        if time.monotonic() >= deadline:
                            return 0, {}, first
                        self.retransmits += 1
                        ep.transport.sendto(data, self.server)
                        wait = min(wait * 2, 4.0)
            finally:
                self.pending.pop((call_id, cseq), None)
            if status in (401, 407) and attempt < 2 and acc.take_challenge(status, hdrs):
                self.challenges += 1
                continue
            break
        return status, hdrs, first

    async def subscribe(self, w: int, p: int) -> tuple[int, str]:
        """Watcher ``w`` subscribes to publisher ``p``: (final status, Call-ID)."""
        acc, pub = self.watchers[w], self.publishers[p]
        call_id = f"sub-{acc.user}-{pub.user}-{uuid.uuid4().hex[:8]}"
        self.subscriptions[call_id] = (w, p)
        status, _, _ = await self.request(
            acc, "SUBSCRIBE", pub.uri, pub.uri, call_id=call_id,
            extra="Event: presence\r\nAccept: application/pidf+xml\r\nExpires: 3600\r\n")
        if status not in (200, 202):
            self.subscriptions.pop(call_id, None)  # no dialog: nothing will be owed to it
        return status, call_id

    async def publish(self, p: int, note: str) -> tuple[int, float]:
        """Publisher ``p`` publishes ``note`` (a modify of its publication once it has
        one, so each publisher has one publication): (final status, time of the first send)."""
        acc = self.publishers[p]
        acc.busy = True
        try:
            extra = ("Event: presence\r\nExpires: 3600\r\nContent-Type: application/pidf+xml\r\n"
                     + (f"SIP-If-Match: {acc.etag}\r\n" if acc.etag else ""))
            status, hdrs, first = await self.request(
                acc, "PUBLISH", acc.uri, acc.uri, extra=extra,
                body=PIDF.format(user=acc.user, domain=DOMAIN, note=note))
            if status == 200:
                acc.etag = _one(hdrs, "sip-etag")
            elif status == 412:
                acc.etag = ""  # the next one starts a new publication
            return status, first
        finally:
            acc.busy = False
