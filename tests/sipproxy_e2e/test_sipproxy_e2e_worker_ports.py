"""``[sipproxy] worker_ports``: each worker names its own UDP port in its Via and Record-Route,
so the callee's answers come straight to the worker that relayed the request.

Without it the callee (one address) answers to the shared port, the kernel hands every
answer to one worker, and about half of them go over a mailbox to the worker that holds the
transaction.  With it no answer is handed over: the test relays eight calls through two
workers and reads the proxy's debug log, which names the first line of every datagram handed
over.  The callee is the test's own: it answers to the top Via's sent-by address as RFC 3261
18.2.2 says when there is no ``rport`` (sipp answers to the source address instead, which
works as before, handed over).
"""

from __future__ import annotations

import random
import re
import socket
import threading

from .sipp_support import ProxyProcess, Sipp, auth_row, call_row, provision

USERS = {"alice": "secret-a", "bob": "secret-b"}


def _free_pair() -> int:
    """A port P with P and P + 1 free for UDP."""
    while True:
        base = random.randrange(20000, 30000)
        socks = []
        try:
            for port in (base, base + 1):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()


def _header(msg: str, name: str) -> list[str]:
    return re.findall(rf"^{name}:[ \t]*(.*?)\r$", msg, re.IGNORECASE | re.MULTILINE)


class Callee(threading.Thread):
    """Bob's phone: 180 and 200 to an INVITE, 200 to a BYE, each sent to the sent-by
    address of the top Via; notes every top Via it got."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.vias: list[str] = []
        self.errors: list[str] = []

    def run(self) -> None:
        while True:
            try:
                msg = self.sock.recv(65535).decode()
            except OSError:
                return
            method = msg.split(" ", 1)[0]
            if method not in ("INVITE", "BYE"):
                continue
            vias = _header(msg, "Via")
            self.vias.append(vias[0])
            m = re.match(r"SIP/2\.0/UDP ([0-9.]+):(\d+);", vias[0])
            if m is None:
                self.errors.append(vias[0])
                continue
            head = "".join(f"Via: {v}\r\n" for v in vias)
            head += "".join(f"Record-Route: {r}\r\n" for r in _header(msg, "Record-Route"))
            head += (f"From: {_header(msg, 'From')[0]}\r\nTo: {_header(msg, 'To')[0]}"
                     f"{'' if ';tag=' in _header(msg, 'To')[0] else ';tag=bob1'}\r\n"
                     f"Call-ID: {_header(msg, 'Call-ID')[0]}\r\nCSeq: {_header(msg, 'CSeq')[0]}\r\n"
                     f"Contact: <sip:bob@127.0.0.1:{self.sock.getsockname()[1]}>\r\n")
            to = (m.group(1), int(m.group(2)))
            if method == "INVITE":
                self.sock.sendto(f"SIP/2.0 180 Ringing\r\n{head}Content-Length: 0\r\n\r\n".encode(), to)
                sdp = "v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4002 RTP/AVP 0\r\n"
                self.sock.sendto((f"SIP/2.0 200 OK\r\n{head}Content-Type: application/sdp\r\n"
                                  f"Content-Length: {len(sdp)}\r\n\r\n{sdp}").encode(), to)
            else:
                self.sock.sendto(f"SIP/2.0 200 OK\r\n{head}Content-Length: 0\r\n\r\n".encode(), to)


def test_answers_come_straight_to_the_worker_that_relayed(sqlite_url, tmp_path):  # SQLite: the steering, no backend's
    provision(sqlite_url, users=USERS)
    base = _free_pair()
    proxy = ProxyProcess(tmp_path, sqlite_url, workers=2, worker_ports=base)
    try:
        out = proxy.output()
        assert f"udp:127.0.0.1:{base}" in out and f"udp:127.0.0.1:{base + 1}" in out, out[-2000:]
        reg = Sipp(tmp_path, "reg", "e2e_register.xml", proxy.port, rows=[auth_row("bob", "secret-b")])
        assert reg.wait() == 0, reg.report()
        phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        phone.bind(("127.0.0.1", reg.port))  # where bob registered from
        callee = Callee(phone)
        callee.start()
        try:
            for n in range(8):
                uac = Sipp(tmp_path, f"uac{n}", "e2e_uac.xml", proxy.port,
                           rows=[call_row("alice", "secret-a", "bob")])
                assert uac.wait() == 0, f"{uac.report()}\n--- proxy\n{proxy.output()[-4000:]}"
        finally:
            phone.close()
        assert not callee.errors, callee.errors
        # every request reached the phone with the relaying worker's own port in our Via, no rport
        ours = [re.fullmatch(r"SIP/2\.0/UDP 127\.0\.0\.1:(\d+);branch=z9hG4bK[^;]*\.(\d)\.[0-9a-f]{12}", v)
                for v in callee.vias]
        assert len(ours) == 16 and all(ours), callee.vias
        assert all(int(m.group(1)) == base + int(m.group(2)) for m in ours), callee.vias
        out = proxy.output()
        handed = re.findall(r"handed to worker \d: (.*)", out)
        assert handed, "no datagram was handed over at all: the test shows nothing"
        assert not [line for line in handed if line.startswith("SIP/2.0")], handed
        assert out.count("INFO call alice@example.com -> bob@example.com: 200 OK") == 8
    finally:
        proxy.stop()
