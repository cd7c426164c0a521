"""Worker processes under the shared supervisor: a worker that dies is replaced.

``workers = 2`` runs the proxy under ``ngnpro.models.prefork.supervise``.  Here one worker is
killed (SIGKILL: no chance to clean up); the supervisor must start a new one on the same
index, which binds the shared addresses again and takes its mailbox back, and calls must
then go through -- also the calls whose Call-ID makes the new worker their owner.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from .sipp_support import ProxyProcess, Sipp, auth_row, call_row, provision

USERS = {"alice": "secret-a", "bob": "secret-b"}


def _children(pid: int) -> set[int]:
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.add(int(entry.name))
    return out


def _until(cond, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_killed_worker_is_restarted_and_calls_are_served(sqlite_url, tmp_path):  # SQLite: the supervisor's restart, no backend's
    provision(sqlite_url, users=USERS)
    proxy = ProxyProcess(tmp_path, sqlite_url, workers=2, sections={"logging": {"level": "info"}})
    try:
        main = proxy.service.proc.pid
        _until(lambda: len(_children(main)) == 2 and proxy.output().count("listening on") == 2)
        before = _children(main)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        _until(lambda: "restarting it" in proxy.output())
        index = int(re.search(r"worker (\d+) exited", proxy.output()).group(1))
        _until(lambda: len(_children(main)) == 2 and proxy.output().count("listening on") == 3)
        assert victim not in _children(main)

        reg = Sipp(tmp_path, "reg", "e2e_register.xml", proxy.port, rows=[auth_row("bob", "secret-b")])
        assert reg.wait() == 0, reg.report()
        served_by_new = False
        for n in range(10):  # calls land on either worker by Call-ID: until the new one had one
            mark = len(proxy.output())
            uas = Sipp(tmp_path, f"uas{n}", "e2e_uas.xml", proxy.port, port=reg.port, server=True)
            uac = Sipp(tmp_path, f"uac{n}", "e2e_uac.xml", proxy.port,
                       rows=[call_row("alice", "secret-a", "bob")])
            assert uac.wait() == 0, f"{uac.report()}\n--- proxy\n{proxy.output()[-4000:]}"
            assert uas.wait() == 0, uas.report()
            _until(lambda m=mark: " INFO call alice@example.com -> bob@example.com: 200 OK"
                   in proxy.output()[m:], timeout=5)
            if f" [{index}] INFO call alice@example.com -> bob@example.com: 200 OK" in proxy.output()[mark:]:
                served_by_new = True
                break
        assert served_by_new, proxy.output()[-4000:]
    finally:
        proxy.stop()


def _request(sock, port: int, method: str, call_id: str, cseq: int, extra: str = "") -> str:
    uri = "sip:example.com" if method == "REGISTER" else "sip:bob@example.com"
    to = "sip:alice@example.com" if method == "REGISTER" else "sip:bob@example.com"
    me = sock.getsockname()[1]
    sock.sendto((f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{call_id}{cseq};rport\r\n"
                 f"Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a{cseq}\r\nTo: <{to}>\r\n"
                 f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:alice@127.0.0.1:{me}>\r\n"
                 f"{extra}Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi").encode(), ("127.0.0.1", port))
    while True:
        text = sock.recv(65535).decode()
        if not text.startswith("SIP/2.0 1"):
            return text


def _credentials(h: str, nonce: str, method: str, uri: str, nc: int, header: str) -> str:
    """alice's digest answer (MD5, qop=auth) as a header line, ``h`` her HA1."""
    from sipproxy.sip.digest import compute_response

    resp = compute_response("MD5", h, nonce=nonce, method=method, uri=uri, qop="auth", nc=f"{nc:08x}", cnonce="c1")
    return (f'{header}: Digest username="alice", realm="example.com", nonce="{nonce}", uri="{uri}", '
            f'response="{resp}", algorithm=MD5, qop=auth, nc={nc:08x}, cnonce="c1"\r\n')


def _two_workers_and_a_phone(sqlite_url: str, tmp_path: Path):  # noqa: ANN202
    """A proxy of two workers logging at info, alice's UDP socket, and her HA1 (MD5)."""
    import socket

    from sipproxy.sip.digest import ha1

    provision(sqlite_url, users=USERS)
    proxy = ProxyProcess(tmp_path, sqlite_url, workers=2, sections={"logging": {"level": "info"}})
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    return proxy, sock, ha1("alice", "example.com", "secret-a", "MD5")


def test_a_nonce_is_accepted_by_every_worker(sqlite_url, tmp_path):  # SQLite: the workers' shared memory
    """A phone reuses the nonce of its last challenge for new requests (nonce-count + 1);
    their Call-IDs spread them over both workers, and each must accept it -- once per
    count: the same count again is refused whichever worker sees it."""
    import uuid

    proxy, sock, h = _two_workers_and_a_phone(sqlite_url, tmp_path)

    def credentials(nonce: str, method: str, uri: str, nc: int, header: str) -> str:
        return _credentials(h, nonce, method, uri, nc, header)

    try:
        reply = _request(sock, proxy.port, "REGISTER", "reg1", 1)
        assert reply.startswith("SIP/2.0 401"), reply
        nonce = re.search(r'nonce="([^"]+)"', reply).group(1)
        reply = _request(sock, proxy.port, "REGISTER", "reg1", 2,
                         credentials(nonce, "REGISTER", "sip:example.com", 1, "Authorization"))
        assert reply.startswith("SIP/2.0 200"), reply
        answers = []
        for nc in range(2, 14):  # twelve MESSAGEs, twelve Call-IDs: both workers have some
            extra = credentials(nonce, "MESSAGE", "sip:bob@example.com", nc, "Proxy-Authorization")
            answers.append(_request(sock, proxy.port, "MESSAGE", uuid.uuid4().hex, 1, extra).split("\r\n", 1)[0])
        assert not [a for a in answers if " 407 " in a], answers  # (bob has no device: 480)
        replayed = _request(sock, proxy.port, "MESSAGE", uuid.uuid4().hex, 1,
                            credentials(nonce, "MESSAGE", "sip:bob@example.com", 5, "Proxy-Authorization"))
        assert replayed.startswith("SIP/2.0 407") and "stale=true" in replayed, replayed
    finally:
        sock.close()
        proxy.stop()


def test_registrations_from_one_address_use_every_worker(sqlite_url, tmp_path):  # SQLite: the workers' steering
    """An SBC registers many accounts from one address and port; the kernel hands all of
    it to one worker (SO_REUSEPORT hashes the sender), so the proxy must spread the
    REGISTERs itself: by Call-ID, like every other message.  Sixteen registrations of one
    socket, sixteen Call-IDs: both workers log some."""
    import uuid

    proxy, sock, h = _two_workers_and_a_phone(sqlite_url, tmp_path)
    try:
        _until(lambda: proxy.output().count("listening on") == 2)
        reply = _request(sock, proxy.port, "REGISTER", "first", 1)
        assert reply.startswith("SIP/2.0 401"), reply
        nonce = re.search(r'nonce="([^"]+)"', reply).group(1)
        for nc in range(1, 17):
            extra = _credentials(h, nonce, "REGISTER", "sip:example.com", nc, "Authorization")
            reply = _request(sock, proxy.port, "REGISTER", uuid.uuid4().hex, 1, extra)
            assert reply.startswith("SIP/2.0 200"), reply
        _until(lambda: proxy.output().count("INFO REGISTER alice@example.com") == 16, timeout=5)
        served = set(re.findall(r" \[(\d)\] INFO REGISTER alice@example\.com", proxy.output()))
        assert served == {"0", "1"}, proxy.output()[-3000:]
    finally:
        sock.close()
        proxy.stop()
