"""The worker supervisor (``ngnpro.models.prefork.supervise``) never leaves a worker behind.

A worker must not outlive its supervisor (it would keep the service's ports and answer with
stale code), and a stop must end every worker even when one ignores SIGTERM or hangs while
stopping.  Each test runs a small supervisor in a subprocess whose workers write their pids.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _start(tmp_path: Path, deaf: int = -1, grace: int = 15) -> tuple[subprocess.Popen, list[int]]:
    """A supervisor of two workers (worker ``deaf`` ignores SIGTERM); it and the workers' pids."""
    script = textwrap.dedent(f"""
        import logging, os, signal, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from ngnpro.models import prefork
        prefork.STOP_GRACE = {grace}

        def run(index):
            if index == {deaf}:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            with open(os.path.join({str(tmp_path)!r}, f"worker{{index}}"), "w") as f:
                f.write(str(os.getpid()))
            while True:
                time.sleep(1)

        sys.exit(prefork.supervise(2, run, logging.getLogger("test")))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    files = [tmp_path / "worker0", tmp_path / "worker1"]
    while not all(f.exists() and f.read_text() for f in files):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    return proc, [int(f.read_text()) for f in files]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not reaped yet: its parent is gone too) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _gone(pids: list[int], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_workers_end_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    proc, pids = _start(tmp_path)
    try:
        proc.kill()  # SIGKILL: the supervisor gets no chance to stop them itself
        proc.wait(10)
        assert _gone(pids, 5), [p for p in pids if _alive(p)]
    finally:
        for p in pids:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    proc, pids = _start(tmp_path, deaf=1, grace=1)
    try:
        started = time.monotonic()
        proc.terminate()
        assert proc.wait(10) == 0
        assert time.monotonic() - started < 6
        assert _gone(pids, 2)
        assert b"worker 1 did not stop within 1 s: killing it" in proc.stderr.read()
    finally:
        for p in pids:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
