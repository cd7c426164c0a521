"""Worker processes forked after the listening sockets are bound: the one way every
service scales past one core.  It lives in the shared layer because services may share
only ``ngnpro.models``; it imports nothing but the standard library."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable


def supervise(count: int, run: Callable[[int], int | None], log: logging.Logger) -> int:
    """Fork ``count`` workers, each calling ``run(index)`` (its return value is the exit
    status, ``None`` meaning 0); restart a worker that dies; on SIGTERM or SIGINT stop them
    all and return 0 once they are gone."""
    children: dict[int, int] = {}
    stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                code = run(index) or 0
            except BaseException:  # noqa: BLE001 - a worker must never return into the parent's loop
                log.exception("worker %d failed", index)
            finally:
                os._exit(code)
        children[pid] = index

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for i in range(count):
        spawn(i)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        index = children.pop(pid, None)
        if index is not None and not stopping:
            log.error("worker %d exited (status %d); restarting it", index, status)
            time.sleep(0.5)
            spawn(index)
    return 0
