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
