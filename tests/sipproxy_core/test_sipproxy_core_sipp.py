"""The message and transaction layers against a real, independent peer: sipp over UDP.

A minimal UA is built here on sipproxy.sip.parser + sipproxy.sip.transaction with a plain socket and
real time (small T1), so the sans-I/O layer is checked on the wire without the gevent edge.
"""

from __future__ import annotations

import heapq
import select
import socket
import subprocess
import time
from pathlib import Path

import pytest

from sipproxy.sip.parser import ParseError, Request, make_response, parse_message
from sipproxy.sip.transaction import (
    Deliver,
    Send,
    StartTimer,
    Terminated,
    Timers,
    TransactionLayer,
)
from tests.helpers import frame, require_tool

SCENARIOS = Path(__file__).resolve().parent / "sipp"


class UdpUA:
    """Executes a TransactionLayer's actions on a UDP socket, timers on the real clock."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.layer = TransactionLayer(Timers(t1=0.1, t2=0.4, t4=0.5, d=0.5))
        self.timers: list[tuple[float, int, StartTimer]] = []
        self.seq = 0
        self.delivered: list[Deliver] = []
        self.terminated: list = []
        self.bad: list[ParseError] = []
        self.on_request = lambda d: None

    def run(self, actions: list) -> None:
        for a in actions:
            if isinstance(a, Send):
                self.sock.sendto(a.data, a.dest)
            elif isinstance(a, StartTimer):
                self.seq += 1
                heapq.heappush(self.timers, (time.monotonic() + a.delay, self.seq, a))
            elif isinstance(a, Deliver):
                self.delivered.append(a)
                if isinstance(a.message, Request):
                    self.on_request(a)
            elif isinstance(a, Terminated):
                self.terminated.append(a.transaction)

    def loop(self, until, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                self.run(self.layer.timer_fired(heapq.heappop(self.timers)[2]))
            wait = min(0.05, self.timers[0][0] - now) if self.timers else 0.05
            ready, _, _ = select.select([self.sock], [], [], max(wait, 0))
            if ready:
                data, src = self.sock.recvfrom(65535)
                try:
                    msg = parse_message(data)
                except ParseError as exc:
                    self.bad.append(exc)
                    continue
                self.run(self.layer.receive(msg, src))

    def close(self) -> None:
        self.sock.close()


class TcpUA(UdpUA):
    """The same UA on one accepted TCP connection, framed with frame."""

    def __init__(self) -> None:
        super().__init__()
        self.sock.close()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None
        self.buffer = b""
        self.framed = 0

    def run(self, actions: list) -> None:
        for a in actions:
            if isinstance(a, Send):
                a.dest.sendall(a.data)
        super().run([a for a in actions if not isinstance(a, Send)])

    def loop(self, until, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                self.run(self.layer.timer_fired(heapq.heappop(self.timers)[2]))
            socks = [self.conn] if self.conn is not None else [self.listener]
            ready, _, _ = select.select(socks, [], [], 0.05)
            if not ready:
                continue
            if self.conn is None:
                self.conn, _addr = self.listener.accept()
                continue
            chunk = self.conn.recv(7)  # tiny reads: messages arrive in pieces
            if not chunk:
                break
            messages, self.buffer, _pings = frame(self.buffer + chunk)
            for data in messages:
                self.framed += 1
                self.run(self.layer.receive(parse_message(data), self.conn, reliable=True))

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


def sipp(scenario: str, *args: str, tmp: Path, transport: str = "u1") -> subprocess.Popen:
    return subprocess.Popen(
        [require_tool("sipp"), *args, "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1",
         "-m", "1", "-t", transport, "-nostdin", "-timeout", "10s", "-timeout_error",
         "-trace_err", "-error_file", str(tmp / "sipp_errors.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp,
    )


def finish(proc: subprocess.Popen, tmp: Path) -> None:
    try:
        _out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    errors = tmp / "sipp_errors.log"
    detail = errors.read_text(errors="replace") if errors.exists() else ""
    assert proc.returncode == 0, f"sipp failed ({proc.returncode}): {err.decode()}\n{detail}"


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_server_transactions_against_sipp_uac(tmp_path: Path, transport: str) -> None:
    """sipp sends INVITE; we answer 180 + 486 through an IST, which absorbs sipp's ACK.

    Over TCP the stream is read 7 bytes at a time and framed by frame."""
    ua = UdpUA() if transport == "u1" else TcpUA()

    def answer(d: Deliver) -> None:
        req = d.message
        if req.method == "INVITE":
            ua.run(ua.layer.send_response(d.transaction, make_response(req, 180, to_tag="core1")))
            ua.run(ua.layer.send_response(d.transaction, make_response(req, 486, to_tag="core1")))
        elif req.method == "OPTIONS":
            ua.run(ua.layer.send_response(d.transaction, make_response(req, 200, to_tag="core1")))

    ua.on_request = answer
    proc = sipp("uac_busy.xml", f"127.0.0.1:{ua.port}", "-s", "bob", tmp=tmp_path,
                transport=transport)
    try:
        ua.loop(lambda: proc.poll() is not None, timeout=15)
        finish(proc, tmp_path)
        invite_txn = ua.delivered[0].transaction
        ua.loop(lambda: invite_txn.state == "Terminated", timeout=5)  # Timer I (T4)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ua.close()
    methods = [d.message.method for d in ua.delivered]
    assert methods == ["INVITE", "OPTIONS"]  # the ACK never reached the TU: absorbed
    assert invite_txn.state == "Terminated" and invite_txn in ua.terminated
    if transport == "u1":
        assert ua.delivered[1].transaction.state == "Completed"  # Timer J is 64*T1 on UDP
    else:
        assert ua.delivered[1].transaction.state == "Terminated"  # and 0 on TCP
        assert ua.framed == 3  # INVITE, ACK, OPTIONS: no retransmissions on TCP
    assert not ua.bad


def test_client_transactions_against_sipp_uas(tmp_path: Path) -> None:
    """We send INVITE through an ICT; sipp answers 486 and checks our hop-by-hop ACK."""
    ua = UdpUA()
    sipp_port = _free_udp_port()
    proc = sipp("uas_busy.xml", "-p", str(sipp_port), tmp=tmp_path)
    try:
        time.sleep(0.3)  # let sipp bind
        dest = ("127.0.0.1", sipp_port)
        common = (
            f"From: <sip:core@127.0.0.1:{ua.port}>;tag=uac1\r\n"
            f"To: <sip:sipp@127.0.0.1:{sipp_port}>\r\n"
            "Call-ID: core-uac-1@127.0.0.1\r\nMax-Forwards: 70\r\n"
        )
        invite = parse_message((
            f"INVITE sip:sipp@127.0.0.1:{sipp_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{ua.port};branch=z9hG4bK-core-uac-1\r\n"
            f"{common}CSeq: 1 INVITE\r\nContact: <sip:core@127.0.0.1:{ua.port}>\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode())
        ict, actions = ua.layer.send_request(invite, dest)
        ua.run(actions)
        ua.loop(lambda: ict.state == "Completed")
        assert [d.message.status for d in ua.delivered] == [100, 486]
        options = parse_message((
            f"OPTIONS sip:sipp@127.0.0.1:{sipp_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{ua.port};branch=z9hG4bK-core-uac-2\r\n"
            f"{common}CSeq: 2 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ).encode())
        nict, actions = ua.layer.send_request(options, dest)
        ua.run(actions)
        ua.loop(lambda: proc.poll() is not None and nict.state == "Terminated", timeout=15)
        finish(proc, tmp_path)
        ua.loop(lambda: ict.state == "Terminated", timeout=5)  # Timer D
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ua.close()
    assert [d.message.status for d in ua.delivered] == [100, 486, 200]
    assert ict.state == "Terminated" and not ua.bad and len(ua.layer) == 0


def _free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
