"""Overload control in the real server: ``python -m sipproxy`` with one worker, behind.

The promise (docs/sipproxy.md "Overload", sipproxy/overload.py): while a worker's UDP receive
queue is more than ``overload_delay`` behind, part of the *new* out-of-dialog requests get a
stateless 503 with Retry-After -- at least STEP_UP x min(4, delay / threshold) of them, spread
evenly -- and what finishes admitted work is never shed: a retransmission meets its
transaction (the very response it had), an in-dialog request is relayed.  When the queue
has drained the worker leaves overload (says so) and admits new requests again.

The signal is made, not raced for: the test freezes the worker (SIGSTOP), queues FILLER new
INVITEs and then the probes while it is frozen, waits STOPPED seconds and lets it go on
(SIGCONT).  Every datagram it finds has waited at least STOPPED seconds, far more than 4 x
the threshold, and the backlog takes the worker well over two probe ticks (2 x 20 ms) to
read through, so its controller enters overload while it works through the filler and
refuses at least 40 % of the new requests from then on, however busy the machine is (a
slower worker only enters earlier in the filler).  The fraction cannot fall before the
last datagram of the backlog is read: until then every probe tick sees a queue head at
least STOPPED seconds old.  One attempt; no flood process whose pace decides the outcome.

With the fraction at least 0.4 and refusals spread evenly (an accumulator: a request adds
the fraction, a refusal takes 1), no three new requests in a row are all admitted; so a
503 among the three new requests just before the probes and one among the three just after
shows the probes were handled while the worker was overloaded.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time

from tests.sipproxy_e2e.sipp_support import ProxyProcess, provision

#: new INVITEs queued ahead of the probes: the worker needs a good 50 us for each (a 407
#: challenge costs ~130 us, a 503 ~53 us), so 2,000 keep it behind for ~0.1 s or more, 5
#: times what the controller needs to enter (two probe ticks 20 ms apart, plus up to 64
#: messages a lane handles before the hub runs a timer); the queue (SO_RCVBUF 4 MB) holds
#: them with room to spare, and the test checks none was dropped
FILLER = 2000
#: seconds the worker stays frozen while its queue fills
STOPPED = 0.5
#: ``overload_delay`` in ms: the queue head's age after the stop is 10 times it, so the
#: controller's first step is its largest (STEP_UP x 4 = 0.4)
THRESHOLD_MS = 50
#: requests that finish admitted work, in the probe
PROBES = 3


class UA:
    """A UDP endpoint of the test; keeps whatever arrives, in order."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # every answer of the backlog
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.seen: list[str] = []

    def send(self, data: str, port: int) -> None:
        self.sock.sendto(data.encode(), ("127.0.0.1", port))

    def receive(self, until, timeout: float) -> None:
        """Collect messages until ``until()`` holds or ``timeout`` seconds passed."""
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                self.seen.append(self.sock.recv(70000).decode(errors="replace"))
            except TimeoutError:
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


def new_invite(ua: UA, call_id: str) -> str:
    """A call from outside to outside: challenged (a stateless 407) when admitted."""
    return request(ua, "INVITE", call_id, f"z9hG4bK{call_id}", uri="sip:dave@elsewhere.example")


def new_register(ua: UA, call_id: str) -> str:
    return request(ua, "REGISTER", call_id, f"z9hG4bK{call_id}", user="carol", uri="sip:example.com")


def status(message: str) -> int:
    return int(message.split(" ", 2)[1]) if message.startswith("SIP/2.0 ") else 0


def to_tag(message: str) -> str:
    return re.search(r"\r\nTo: [^\r]*;tag=([^;\r]+)", message).group(1)


def call_id(message: str) -> str:
    return re.search(r"\r\nCall-ID: ([^\r]+)\r\n", message).group(1)


def ask(ua: UA, data: str, cid: str, port: int) -> str:
    """Send once to the idle worker and return its one final answer (loopback drops
    nothing).  A 100 Trying may come first: the worker's first request may wait on the
    database (a server database more than SQLite), and a proxy that waits owes a 100."""
    ua.send(data, port)

    def finals() -> list[str]:
        return [a for a in ua.answers(cid) if status(a) >= 200]

    ua.receive(finals, 5)
    assert len(finals()) == 1 and all(status(a) == 100 for a in ua.answers(cid) if status(a) < 200), (
        cid, ua.seen)
    return finals()[0]


def _wait_state(pid: int, stopped: bool) -> None:
    """Until the process is (not) in the stopped state: SIGSTOP takes effect a moment later."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if (state == "T") == stopped:
            return
        time.sleep(0.002)
    raise AssertionError(f"process {pid} never {'stopped' if stopped else 'went on'}")


def test_overloaded_worker_sheds_new_requests_and_finishes_admitted_work(db_url, tmp_path):
    provision(db_url)
    proxy = ProxyProcess(tmp_path, db_url, overload_delay=THRESHOLD_MS, overload_retry_after=9,
                         sections={"logging": {"level": "info"}})
    caller, callee = UA(), UA()
    pid = proxy.service.proc.pid
    frozen = False
    try:
        # the idle worker's answers: what a new request gets when it is admitted (stateless
        # challenges), and the admitted MESSAGEs (unknown user: 404 from their transactions,
        # kept 32 s to absorb retransmissions)
        admitted_invite = ask(caller, new_invite(caller, "idle-invite"), "idle-invite", proxy.port)
        admitted_register = ask(caller, new_register(caller, "idle-register"), "idle-register", proxy.port)
        assert (status(admitted_invite), status(admitted_register)) == (407, 401)
        # acknowledged as a phone does: a 407 sent after a 100 (see ask) is resent until then
        caller.send(request(caller, "ACK", "idle-invite", "z9hG4bKidle-invite",
                            to_tag=to_tag(admitted_invite), uri="sip:dave@elsewhere.example"), proxy.port)
        stateless_mark = to_tag(admitted_invite).split("-")[0]
        first = {}
        for k in range(PROBES):
            first[k] = ask(caller, request(caller, "MESSAGE", f"admitted{k}@t", f"z9hG4bKadmitted{k}"),
                           f"admitted{k}@t", proxy.port)
            assert status(first[k]) == 404, first[k]
        caller.seen.clear()

        # the backlog, queued while the worker is frozen, handled in this order
        before = [f"before{n}@t" for n in range(3)]
        after = [f"after{n}@t" for n in range(3)]
        backlog = [new_invite(caller, f"filler{n}@t") for n in range(FILLER)]
        backlog += [new_invite(caller, cid) for cid in before]
        for k in range(PROBES):
            backlog.append(request(caller, "MESSAGE", f"admitted{k}@t", f"z9hG4bKadmitted{k}"))  # retransmission
            backlog.append(request(caller, "BYE", f"dialog{k}@t", f"z9hG4bKbye{k}", to_tag="callee1",
                                   route=f"Route: <sip:127.0.0.1:{proxy.port};lr>\r\n",
                                   uri=f"sip:bob@127.0.0.1:{callee.port}"))  # in-dialog, routed via us
        backlog += [new_register(caller, cid) for cid in after]
        os.kill(pid, signal.SIGSTOP)
        frozen = True
        _wait_state(pid, stopped=True)
        for data in backlog:
            caller.send(data, proxy.port)
        time.sleep(STOPPED)
        os.kill(pid, signal.SIGCONT)
        frozen = False
        _wait_state(pid, stopped=False)
        wanted = FILLER + len(before) + len(after) + PROBES
        caller.receive(lambda: len(caller.seen) >= wanted, 30)
        callee.receive(lambda: sum(m.startswith("BYE ") for m in callee.seen) >= PROBES, 5)
        log = proxy.output()

        # every request of the backlog was answered, once (none dropped by the kernel), but
        # the BYEs: their answer would come from the callee, which does not answer
        answered = sorted(call_id(m) for m in caller.seen)
        expected = sorted([f"filler{n}@t" for n in range(FILLER)] + before + after
                          + [f"admitted{k}@t" for k in range(PROBES)])
        assert answered == expected, (len(answered), len(expected), sorted(set(answered) ^ set(expected))[:20],
                                      log[-3000:])
        # the controller measured the signal made: the queue's head as old as the stop
        entered = re.findall(rf"overload: (\d+) ms behind \(threshold {THRESHOLD_MS} ms\)", log)
        assert len(entered) == 1 and int(entered[0]) >= STOPPED * 1000 - 1, log[-3000:]
        # the filler: each its idle answer or a 503; from the first 503 on, at least 40 % are
        # (the first step's fraction, 0.4, spread evenly; allow the accumulator's rounding)
        filler = [status(m) for m in caller.seen if call_id(m).startswith("filler")]
        assert len(filler) == FILLER and set(filler) == {407, 503}, sorted(set(filler))
        shed = filler[filler.index(503):]
        assert shed.count(503) >= 0.4 * len(shed) - 1, (shed.count(503), len(shed))

        # the new requests around the probes: each its idle answer or a 503, and a 503
        # among each three (the controller refuses at least 40 % from its first step)
        for group, idle in ((before, 407), (after, 401)):
            got = [status(caller.answers(cid)[0]) for cid in group]
            assert set(got) <= {idle, 503} and 503 in got, (group, got)
        # a refusal: 503 with Retry-After, stateless (tagged like the stateless 407s)
        for refusal in (m for m in caller.seen if status(m) == 503):
            assert "\r\nRetry-After: 9\r\n" in refusal, refusal
            assert to_tag(refusal).split("-")[0] == stateless_mark, refusal
        # what finishes admitted work, handled between them, was not shed: a retransmission
        # got its transaction's very 404 again, an in-dialog request was relayed
        for k in range(PROBES):
            again = caller.answers(f"admitted{k}@t")
            assert [status(m) for m in again] == [404] and to_tag(again[0]) == to_tag(first[k]), again
            assert not any(status(m) == 503 for m in caller.answers(f"dialog{k}@t"))
            assert any(f"\r\nCall-ID: dialog{k}@t\r\n" in m for m in callee.seen if m.startswith("BYE ")), callee.seen

        # the backlog drained: the worker leaves overload (says so) and admits new requests
        deadline = time.monotonic() + 10
        while "overload over after" not in proxy.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "overload over after" in proxy.output(), proxy.output()[-3000:]
        fresh = ask(caller, request(caller, "MESSAGE", "later@t", "z9hG4bKlater"), "later@t", proxy.port)
        assert status(fresh) == 404, fresh
    finally:
        if frozen:
            os.kill(pid, signal.SIGCONT)
        caller.close()
        callee.close()
        proxy.stop()
