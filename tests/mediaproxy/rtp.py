"""Test peers for the relay: RTP endpoints (plain UDP sockets) and a raw control client."""

from __future__ import annotations

import json
import socket
import struct
import time
from pathlib import Path

from tests.helpers import Service, free_port, write_config


def rtp_packet(seq: int, ssrc: int = 0x1234, pt: int = 0, size: int = 160) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, seq * 160 & 0xFFFFFFFF, ssrc) + bytes(size)


class Endpoint:
    """A UDP socket standing for one phone's RTP (and optionally RTCP) port."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(2.0)
        self.host = host
        self.port = self.sock.getsockname()[1]

    def send(self, dest: tuple[str, int], n: int = 1, start: int = 0) -> None:
        for i in range(n):
            self.sock.sendto(rtp_packet(start + i), dest)

    def receive(self, n: int, timeout: float = 2.0) -> list[tuple[bytes, tuple]]:
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                got.append(self.sock.recvfrom(4096))
            except TimeoutError:
                break
        return got

    def drain(self, wait: float = 0.2) -> int:
        return len(self.receive(10_000, wait))

    def close(self) -> None:
        self.sock.close()


class Control:
    """A raw JSON-lines client for the relay's control port (independent of sipproxy's)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=5)
        self.buf = b""
        self.events: list[dict] = []
        self.next_id = 0

    def call(self, **msg) -> dict:
        self.next_id += 1
        msg.setdefault("id", self.next_id)
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        return self.reply(msg["id"])

    def raw(self, line: bytes) -> dict:
        self.sock.sendall(line)
        return self.reply(None)

    def readline(self) -> bytes:
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("relay closed the control connection")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def reply(self, rid) -> dict:
        while True:
            obj = json.loads(self.readline())
            if "event" in obj:
                self.events.append(obj)
                continue
            assert obj.get("id") == rid, obj
            return obj

    def wait_event(self, timeout: float) -> dict:
        if self.events:
            return self.events.pop(0)
        self.sock.settimeout(timeout)
        try:
            return json.loads(self.readline())
        finally:
            self.sock.settimeout(5)

    def close(self) -> None:
        self.sock.close()


def start_relay(tmp: Path, db_url: str, media_timeout: int = 30, relay_ip: str = "127.0.0.1",
                name: str = "mediaproxy", kernel_forwarding: bool | str = "auto") -> tuple[Service, int, tuple[int, int]]:
    """Start ``python -m mediaproxy`` with its own control port and a port range of its own."""
    control = free_port()
    low = 20000 + (free_port(socket.SOCK_DGRAM) % 20000) // 2 * 2
    rng = (low, low + 400)
    folder = tmp / name
    folder.mkdir(exist_ok=True)
    cfg = write_config(folder / "msp.toml", {
        "database": {"url": db_url},
        "logging": {"level": "debug"},
        "mediaproxy": {"control": f"127.0.0.1:{control}", "relay_ip": relay_ip,
                       "port_range": list(rng), "media_timeout": media_timeout,
                       "kernel_forwarding": kernel_forwarding},
    })
    svc = Service("mediaproxy", cfg).wait_tcp("127.0.0.1", control)
    return svc, control, rng
