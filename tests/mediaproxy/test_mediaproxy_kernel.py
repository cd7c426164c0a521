"""The optional kernel path (``kernel_forwarding = true``): locked streams forwarded by
nftables NAT, counted back into the summary; hijack still refused.  Needs root and ``nft``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

from tests.helpers import Service, free_port, write_config
from tests.mediaproxy.rtp import Control, Endpoint

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"),
                                reason="kernel forwarding needs root and nft (Debian package nftables)")


def nft_table(name: str) -> str:
    out = subprocess.run(["nft", "list", "table", "ip", name], capture_output=True, text=True)
    return out.stdout if out.returncode == 0 else ""


def test_kernel_path_forwards_counts_and_refuses_hijack(tmp_path):
    control = free_port()
    low = 20000 + (free_port(socket.SOCK_DGRAM) % 20000) // 2 * 2
    cfg = write_config(tmp_path / "msp.toml", {
        "database": {"url": f"sqlite:///{tmp_path / 'msp.sqlite'}"},
        "logging": {"level": "debug"},
        "mediaproxy": {"control": f"127.0.0.1:{control}", "port_range": [low, low + 100],
                       "kernel_forwarding": True, "media_timeout": 30},
    })
    svc = Service("mediaproxy", cfg).wait_tcp("127.0.0.1", control)
    table = f"mediaproxy_{control}"
    try:
        ctl = Control(control)
        a, b, attacker = Endpoint(), Endpoint(), Endpoint()
        o = ctl.call(command="update", call_id="k1", from_tag="a", direction="offer",
                     streams=[{"type": "audio", "ip": "127.0.0.1", "port": a.port}])
        an = ctl.call(command="update", call_id="k1", from_tag="a", to_tag="b", direction="answer",
                      streams=[{"type": "audio", "ip": "127.0.0.1", "port": b.port}])
        a_side, b_side = ("127.0.0.1", an["streams"][0]["port"]), ("127.0.0.1", o["streams"][0]["port"])
        a.send(a_side, 1)
        b.send(b_side, 1)  # both parties learned: the flow goes to the kernel at the next tick
        assert len(b.receive(1)) == 1 and len(a.receive(1)) == 1
        deadline = time.monotonic() + 10
        while f". {a_side[1]} : " not in nft_table(table) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert f". {a_side[1]} : " in nft_table(table), svc.output()[-2000:]
        a.send(a_side, 20, start=100)
        got = b.receive(20)
        assert len(got) == 20 and {src for _, src in got} == {b_side}  # from the relay port, NATed
        b.send(b_side, 10, start=200)
        got = a.receive(10)
        assert len(got) == 10 and {src for _, src in got} == {a_side}
        attacker.send(a_side, 3)
        assert b.receive(1, 0.3) == []  # not the locked source: to user space, dropped
        time.sleep(2.6)  # the kernel counters are read every 2 s
        summary = ctl.call(command="remove", call_id="k1")["summary"]["streams"][0]
        assert summary["packets_caller_to_callee"] == 21 and summary["packets_callee_to_caller"] == 11
        assert summary["bytes_caller_to_callee"] == 21 * 172
        assert summary["caller"]["dropped"] == 3
        deadline = time.monotonic() + 5
        while f". {a_side[1]} : " in nft_table(table) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert f". {a_side[1]} : " not in nft_table(table)  # the flow's elements are gone
        a.send(a_side, 1)
        assert b.receive(1, 0.3) == []
        ctl.close()
    finally:
        svc.stop()
    assert nft_table(table) == ""  # the relay's table is removed at exit
