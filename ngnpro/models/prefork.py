"""Worker processes forked after the listening sockets are bound: the one way every
service scales past one core.  It lives in the shared layer because services may share
only ``ngnpro.models``; it imports nothing but the standard library."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable

#: seconds stopping workers get before they are killed
STOP_GRACE = 15


def _die_with_parent() -> None:
    """Linux: end this worker when the supervisor dies (a supervisor killed hard had no
    chance to stop it), so that no worker outlives it holding the service's ports; SIGKILL,
    because a worker that a SIGTERM did not stop is exactly the one to worry about."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def supervise(count: int, run: Callable[[int], int | None], log: logging.Logger) -> int:
    """Fork ``count`` workers, each calling ``run(index)`` (its return value is the exit
    status, ``None`` meaning 0); restart a worker that dies; on SIGTERM or SIGINT stop them
    all and return 0 once they are gone (killing those still there after ``STOP_GRACE``)."""
    children: dict[int, int] = {}
    stopping = False
    parent = os.getpid()
    stop_signals = {signal.SIGTERM, signal.SIGINT}

    def spawn(index: int) -> None:
        # signals held across the fork: a stop must not land between the fork and the new
        # pid being known (it would never reach that worker), nor run the supervisor's
        # handler in the child
        held = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            _die_with_parent()
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            code = 1
            try:
                if os.getppid() == parent:  # else it died while we were forking
                    code = run(index) or 0
            except BaseException:  # noqa: BLE001 - a worker must never return into the parent's loop
                log.exception("worker %d failed", index)
            finally:
                os._exit(code)
        children[pid] = index
        signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        signal.alarm(STOP_GRACE)
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill(_signum: int, _frame: object) -> None:
        for pid, index in list(children.items()):
            log.error("worker %d did not stop within %d s: killing it", index, STOP_GRACE)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGALRM, kill)
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
