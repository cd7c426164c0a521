"""`scripts/run`, the newcomer's command: it starts every service, says where each listens,
and Ctrl-C stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import ROOT, free_port, wait_tcp, write_config

SERVICES = [svc for svc in ("ngnpro", "enumdns", "sipproxy", "mediaproxy")
            if (ROOT / svc / "__main__.py").exists() and (svc != "ngnpro" or (ROOT / "ngnpro" / "server.py").exists())]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_scripts_run_starts_and_stops_everything(tmp_path: Path):
    ports = {name: free_port() for name in ("ngnpro", "enumdns", "sip", "control")}
    lo, hi = 40000 + (os.getpid() % 100) * 200, 40000 + (os.getpid() % 100) * 200 + 198
    config = write_config(tmp_path / "msp.toml", {
        "database": {"url": f"sqlite:///{tmp_path / 'msp.sqlite'}"},
        "ngnpro": {"listen": f"127.0.0.1:{ports['ngnpro']}"},
        "enumdns": {"listen": f"127.0.0.1:{ports['enumdns']}"},
        "sipproxy": {"listen": [f"udp:127.0.0.1:{ports['sip']}", f"tcp:127.0.0.1:{ports['sip']}"]},
        "mediaproxy": {"control": f"127.0.0.1:{ports['control']}", "port_range": [lo, hi]},
    })
    env = dict(os.environ, MSP_CONFIG=str(config), MSP_VENV=sys.prefix)
    log = open(tmp_path / "run.log", "wb")
    # Ctrl-C at a terminal: SIGINT at its default in the shell.  A test runner started in
    # the background by a non-interactive shell passes SIGINT on *ignored*, and bash cannot
    # trap a signal ignored on entry, so the test puts it back.
    proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "run")], stdout=log, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        listen = {"ngnpro": ports["ngnpro"], "enumdns": ports["enumdns"], "sipproxy": ports["sip"],
                  "mediaproxy": ports["control"]}
        for svc in SERVICES:
            wait_tcp("127.0.0.1", listen[svc], timeout=60, proc=proc)
        deadline = time.monotonic() + 10
        while b"Ctrl-C stops it" not in (tmp_path / "run.log").read_bytes() and time.monotonic() < deadline:
            time.sleep(0.1)
        text = (tmp_path / "run.log").read_text()
        assert f"127.0.0.1:{ports['ngnpro']}/ngnpro/" in text
        assert f"udp:127.0.0.1:{ports['sip']}" in text
        assert "database at revision" in text
        assert proc.poll() is None, text
        children = _children(proc.pid)
        assert len(children) >= len(SERVICES)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        time.sleep(0.5)
        assert not [c for c in children if Path(f"/proc/{c}").exists()], "services left running"
        assert "msp: stopped" in (tmp_path / "run.log").read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
