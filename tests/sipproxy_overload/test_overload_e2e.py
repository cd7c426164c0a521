"""Overload control in the real server: ``python -m sipproxy`` with one worker, flooded.

The flood (a separate process sending new INVITEs as fast as it can) keeps the worker's
receive queue longer than ``overload_delay`` -- set to 1 ms here through the ordinary
configuration key, so any machine overloads it.  While it is overloaded, new requests must
get the stateless 503 with Retry-After, and what finishes admitted work must still be
handled: a retransmission of a request admitted before (answered by its transaction with
the very response it had) and an in-dialog request (relayed to its Route's target).

No timing is asserted: every exchange is retried until answered, as a UA would, and the
evidence that the worker was overloaded at the moment is a 503 to a new request sent just
before and one sent just after, in the same burst (one queue, handled in order).
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

from tests.sipproxy_e2e.sipp_support import ProxyProcess, provision

#: new INVITEs from a process of their own, WINDOW of them unanswered at any time (a closed
#: loop, like a load generator with a call limit): the worker's queue stays long enough to be
#: well over 1 ms behind on any machine, yet short enough that the kernel drops nothing
FLOOD = r"""
import re, socket, sys, time
port, until, window = int(sys.argv[1]), time.monotonic() + float(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(0.5)
me = s.getsockname()[1]
head = (f"INVITE sip:nobody@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKflood%d\r\n"
        "From: <sip:flood@elsewhere.example>;tag=fl\r\nTo: <sip:nobody@example.com>\r\n"
        "Call-ID: flood%d@elsewhere.example\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
call_id = re.compile(rb"Call-ID: flood(\d+)@")
open_, n = set(), 0
while time.monotonic() < until:
    while len(open_) < window:
        n += 1
        open_.add(n)
        s.sendto((head % (n, n)).encode(), ("127.0.0.1", port))
    try:
        m = call_id.search(s.recv(70000))
    except OSError:  # nothing for a while: start over
        open_.clear()
        continue
    if m:
        open_.discard(int(m.group(1)))
"""

#: bursts tried at most (each needs its own admitted MESSAGE, made before the flood)
BURSTS = 30


class UA:
    """A UDP endpoint of the test; collects whatever arrives, by first line and Call-ID."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.seen: list[str] = []

    def send(self, data: str, port: int) -> None:
        self.sock.sendto(data.encode(), ("127.0.0.1", port))

    def drain(self) -> None:
        while True:
            try:
                self.seen.append(self.sock.recv(70000).decode(errors="replace"))
            except (TimeoutError, BlockingIOError):
                return

    def answers(self, call_id: str) -> list[str]:
        return [m for m in self.seen if re.search(rf"\r\nCall-ID: {re.escape(call_id)}\r\n", m)]

    def close(self) -> None:
        self.sock.close()


def request(ua: UA, method: str, call_id: str, branch: str, *, user: str = "nobody",
            to_tag: str = "", route: str = "", uri: str = "") -> str:
    tag = f";tag={to_tag}" if to_tag else ""
    return (f"{method} {uri or f'sip:{user}@example.com'} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{ua.port};branch={branch};rport\r\n{route}"
            f"From: <sip:carol@elsewhere.example>;tag=c1\r\nTo: <sip:{user}@example.com>{tag}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n"
            f"Contact: <sip:carol@127.0.0.1:{ua.port}>\r\nContent-Length: 0\r\n\r\n")


def status(message: str) -> int:
    return int(message.split(" ", 2)[1]) if message.startswith("SIP/2.0 ") else 0


def to_tag(message: str) -> str:
    return re.search(r"\r\nTo: [^\r]*;tag=([^;\r]+)", message).group(1)


def test_overloaded_worker_sheds_new_requests_and_finishes_admitted_work(db_url, tmp_path):
    provision(db_url)
    proxy = ProxyProcess(tmp_path, db_url, overload_delay=1, overload_retry_after=9,
                         sections={"logging": {"level": "info"}})
    caller, callee = UA(), UA()
    flood = None
    try:
        # admitted before the flood: MESSAGEs for an unknown user, answered 404 by their
        # transactions (kept 32 s to absorb retransmissions); one per burst below
        first = {}
        for k in range(BURSTS):
            admitted = request(caller, "MESSAGE", f"admitted{k}@t", f"z9hG4bKadmitted{k}")
            for _ in range(50):
                caller.send(admitted, proxy.port)
                caller.drain()
                if caller.answers(f"admitted{k}@t"):
                    first[k] = caller.answers(f"admitted{k}@t")[0]
                    break
            assert status(first[k]) == 404, caller.seen
        caller.seen.clear()

        flood = subprocess.Popen([sys.executable, "-c", FLOOD, str(proxy.port), "120", "300"])
        shed_around = None
        admitted_until = time.monotonic() + 25  # their transactions absorb retransmissions for 32 s
        for k in range(BURSTS):
            if time.monotonic() > admitted_until:
                break
            before = request(caller, "INVITE", f"before{k}@t", f"z9hG4bKbefore{k}")
            retransmission = request(caller, "MESSAGE", f"admitted{k}@t", f"z9hG4bKadmitted{k}")
            # in-dialog: routed through us (our Route), to the callee
            bye = request(caller, "BYE", f"dialog{k}@t", f"z9hG4bKbye{k}", to_tag="callee1",
                          route=f"Route: <sip:127.0.0.1:{proxy.port};lr>\r\n",
                          uri=f"sip:bob@127.0.0.1:{callee.port}")
            after = request(caller, "REGISTER", f"after{k}@t", f"z9hG4bKafter{k}", user="carol",
                            uri="sip:example.com")
            for data in (before, retransmission, bye, after):  # one burst: handled in this order
                caller.send(data, proxy.port)
            for _ in range(50):  # the queue is long (and may drop some): wait for the answers
                caller.drain()
                callee.drain()
                if caller.answers(f"before{k}@t") and caller.answers(f"after{k}@t"):
                    break
            if (any(status(m) == 503 for m in caller.answers(f"before{k}@t"))
                    and any(status(m) == 503 for m in caller.answers(f"after{k}@t"))
                    and caller.answers(f"admitted{k}@t")
                    and any(f"Call-ID: dialog{k}@t" in m for m in callee.seen if m.startswith("BYE "))):
                shed_around = k
                break
        assert shed_around is not None, f"no burst answered as expected:\n{caller.seen}\n{proxy.output()[-3000:]}"
        k = shed_around
        # the new requests around: 503 with Retry-After, stateless (a To tag of its own)
        refusal = next(m for m in caller.answers(f"before{k}@t") if status(m) == 503)
        assert "\r\nRetry-After: 9\r\n" in refusal and to_tag(refusal)
        # never a 503 to what finishes admitted work, in any burst: a retransmission got its
        # transaction's very 404 again, an in-dialog request was relayed (above) and not refused
        for j in range(k + 1):
            for again in caller.answers(f"admitted{j}@t"):
                assert status(again) == 404 and to_tag(again) == to_tag(first[j]), again
            assert not any(status(m) == 503 for m in caller.answers(f"dialog{j}@t"))
        assert "overload: " in proxy.output() and "ms behind (threshold 1 ms)" in proxy.output()
        flood.kill()
        flood.wait()
        flood = None
        # the flood over: the worker leaves overload (says so) and admits new requests again
        for _ in range(600):
            if "overload over after" in proxy.output():
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"never left overload:\n{proxy.output()[-3000:]}")
        fresh = request(caller, "MESSAGE", "later@t", "z9hG4bKlater")
        for _ in range(50):
            caller.send(fresh, proxy.port)
            caller.drain()
            if caller.answers("later@t"):
                break
        assert [status(m) for m in caller.answers("later@t")][:1] == [404], caller.answers("later@t")
    finally:
        if flood is not None:
            flood.kill()
            flood.wait()
        caller.close()
        callee.close()
        proxy.stop()
