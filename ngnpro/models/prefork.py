"""Worker processes forked after the listening sockets are bound: the one way every
service scales past one core.  It lives in the shared layer because services may share
only ``ngnpro.models``; it imports nothing but the standard library.

A worker may also *retire*: a process whose memory has grown for good (libxml2's name
dictionary never shrinks, see docs/reliability.md finding 5) cannot give it back, so it
is replaced by a fresh fork.  The retiring worker stops accepting, calls
:func:`announce_retirement` (the supervisor forks its replacement at once, while the old
one still finishes its requests on the shared listening socket, which never closes), then
exits with status :data:`RETIRED`, which the supervisor takes as planned.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable

#: seconds stopping workers get before they are killed
STOP_GRACE = 15
#: the exit status of a worker that retired as planned (EX_TEMPFAIL): replaced at once,
#: logged at info -- not a failure
RETIRED = 75
#: the supervisor's end of the retirement notices, inherited by each worker (None when the
#: process is not a supervised worker)
_notices: int | None = None


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


def supervised() -> bool:
    """Whether this process is a worker of :func:`supervise` (one that may retire)."""
    return _notices is not None


def announce_retirement() -> bool:
    """Tell the supervisor that this worker has stopped accepting and will exit with
    :data:`RETIRED` once its requests are done, so that the replacement starts now rather
    than after the drain (connections meanwhile wait in the listen backlog).  False when
    there is no supervisor to tell."""
    if _notices is None:
        return False
    try:
        os.write(_notices, os.getpid().to_bytes(4, "little"))  # < PIPE_BUF: one atomic write
        os.kill(os.getppid(), signal.SIGUSR1)
    except OSError:
        return False
    return True


def supervise(count: int, run: Callable[[int], int | None], log: logging.Logger) -> int:
    """Fork ``count`` workers, each calling ``run(index)`` (its return value is the exit
    status, ``None`` meaning 0); restart a worker that dies; replace one that retires (see
    :func:`announce_retirement`) at once; on SIGTERM or SIGINT stop them all and return 0
    once they are gone (killing those still there after ``STOP_GRACE``)."""
    global _notices
    children: dict[int, int] = {}
    retiring: set[int] = set()  # announced, still finishing their requests
    stopping = False
    parent = os.getpid()
    held_signals = {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1}
    notices_r, notices_w = os.pipe()
    os.set_blocking(notices_r, False)

    def spawn(index: int) -> None:
        global _notices
        # signals held across the fork: a stop must not land between the fork and the new
        # pid being known (it would never reach that worker), nor run the supervisor's
        # handler in the child; a retirement notice must not fork from inside this fork
        held = signal.pthread_sigmask(signal.SIG_BLOCK, held_signals)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.signal(signal.SIGUSR1, signal.SIG_DFL)
            os.close(notices_r)
            _notices = notices_w
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

    def retired(_signum: int, _frame: object) -> None:
        """A worker has stopped accepting: start its replacement now."""
        try:
            data = os.read(notices_r, 4096)
        except BlockingIOError:
            return
        for at in range(0, len(data) - 3, 4):
            pid = int.from_bytes(data[at:at + 4], "little")
            index = children.get(pid)
            if index is None or pid in retiring or stopping:
                continue
            retiring.add(pid)
            log.info("worker %d (pid %d) is retiring; starting its replacement", index, pid)
            spawn(index)

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
    signal.signal(signal.SIGUSR1, retired)
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
        planned = os.WIFEXITED(status) and os.WEXITSTATUS(status) == RETIRED
        if pid in retiring:
            retiring.discard(pid)  # its replacement runs already
            if not planned:
                log.warning("worker %d (pid %d) exited while retiring (status %d)", index, pid, status)
            else:
                log.info("worker %d (pid %d) retired", index, pid)
        elif index is not None and not stopping:
            if planned:  # retired without a notice (it could not send one): replace it now
                log.info("worker %d (pid %d) retired; starting its replacement", index, pid)
            else:
                log.error("worker %d exited (status %d); restarting it", index, status)
                time.sleep(0.5)
            spawn(index)
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    os.close(notices_r)
    os.close(notices_w)
    return 0
