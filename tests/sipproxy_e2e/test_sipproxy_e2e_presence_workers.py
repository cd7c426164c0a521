"""End to end: with ``workers = 2`` every NOTIFY's 200 reaches the worker that sent it.

A worker sends NOTIFYs for subscriptions whose Call-ID another worker owns: after a PUBLISH
it handled, or -- here -- worker 0's presence service after a pres-rules change.  The
watchers' 200s arrive on the shared port; were they steered by Call-ID, half would reach a
worker without the client transaction, the NOTIFY would be retransmitted (T1, 0.5 s) until
Timer F (32 s) and then end the subscription as a timeout (found by scripts/bench/presence:
NOTIFYs lost after half a minute of load).  Twelve foreign watchers (no credentials needed:
a watcher of another domain is known by its From), each on its own socket and Call-ID,
subscribe to bob and wait (pending); bob's rules then allow them all.  Each must get its
active NOTIFY exactly once in the 2 s after it -- no retransmission -- and the proxy must
log no NOTIFY timeout.
"""

from __future__ import annotations

import socket
import time
import uuid

from ngnpro.models import XcapDocument, open_database, record_change
from sipproxy.sip.messages import Request
from sipproxy.sip.parser import parse_message

from .sipp_support import ProxyProcess, provision

WATCHERS = 12
RULES = ('<?xml version="1.0" encoding="UTF-8"?><cr:ruleset xmlns:cr="urn:ietf:params:xml:ns:common-policy" '
         'xmlns:pr="urn:ietf:params:xml:ns:pres-rules"><cr:rule id="all"><cr:conditions><cr:identity>'
         '<cr:many domain="other.example"/></cr:identity></cr:conditions>'
         '<cr:actions><pr:sub-handling>allow</pr:sub-handling></cr:actions></cr:rule></cr:ruleset>')


class Watcher:
    """One watcher: a UDP socket, its SUBSCRIBE, and every NOTIFY it got (answered 200)."""

    def __init__(self, n: int, proxy_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.proxy = ("127.0.0.1", proxy_port)
        self.user = f"w{n}"
        self.call_id = f"{uuid.uuid4().hex}@watcher"
        #: (CSeq number, Subscription-State) of each NOTIFY received, repeats included
        self.notifies: list[tuple[int, str]] = []
        self.status = 0

    def subscribe(self) -> None:
        self.sock.sendto((
            f"SUBSCRIBE sip:bob@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{self.user}@other.example>;tag={self.user}t\r\n"
            f"To: <sip:bob@example.com>\r\nCall-ID: {self.call_id}\r\nCSeq: 1 SUBSCRIBE\r\n"
            f"Contact: <sip:{self.user}@127.0.0.1:{self.port}>\r\nEvent: presence\r\n"
            f"Accept: application/pidf+xml\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n").encode(), self.proxy)

    def poll(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except BlockingIOError:
                return
            msg = parse_message(data)
            if not isinstance(msg, Request):
                if msg.status >= 200:
                    self.status = msg.status
                continue
            assert msg.method == "NOTIFY" and msg.call_id == self.call_id
            self.notifies.append((msg.cseq[0], msg.headers.get("subscription-state").split(";")[0].strip()))
            h = msg.headers
            ok = "".join(f"Via: {v}\r\n" for v in h.getall("via"))
            self.sock.sendto((f"SIP/2.0 200 OK\r\n{ok}From: {h.get('from')}\r\nTo: {h.get('to')}\r\n"
                              f"Call-ID: {msg.call_id}\r\nCSeq: {h.get('cseq')}\r\nContent-Length: 0\r\n\r\n"
                              ).encode(), addr)


def _poll_until(watchers: list[Watcher], done, timeout: float) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for w in watchers:
            w.poll()
        if done():
            return
        time.sleep(0.01)


def test_notify_answers_reach_the_sending_worker(tmp_path, sqlite_url):
    provision(sqlite_url, users={"bob": "pw-b"})
    proxy = ProxyProcess(tmp_path, sqlite_url, workers=2, sections={"logging": {"level": "info"}})
    watchers = [Watcher(n, proxy.port) for n in range(WATCHERS)]
    try:
        for w in watchers:
            w.subscribe()
        _poll_until(watchers, lambda: all(w.status and w.notifies for w in watchers), 10.0)
        assert [w.status for w in watchers] == [200] * WATCHERS, proxy.output()[-3000:]
        assert all(w.notifies[0][1] == "pending" for w in watchers)

        engine, sessions = open_database(sqlite_url, migrate=False)
        with sessions() as s, s.begin():  # what the XCAP server does on a PUT
            s.add(XcapDocument(auid="pres-rules", xui="bob@example.com", filename="index",
                               document=RULES, etag="e1"))
            record_change(s, "xcap", "pres-rules/bob@example.com/index")
        engine.dispose()

        def active() -> bool:
            return all(any(state == "active" for _, state in w.notifies) for w in watchers)

        _poll_until(watchers, active, 5.0)
        assert active(), [w.notifies for w in watchers]
        _poll_until(watchers, lambda: False, 2.0)  # 4 x T1: a NOTIFY whose 200 went astray is sent again
        repeats = {w.user: w.notifies for w in watchers if len({c for c, _ in w.notifies}) != len(w.notifies)}
        assert not repeats, f"NOTIFYs retransmitted although answered: {repeats}"
        assert "answered 408" not in proxy.output()
    finally:
        for w in watchers:
            w.sock.close()
        proxy.stop()
