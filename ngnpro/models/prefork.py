"""Worker processes forked after the listening sockets are bound: the one way every
service scales past one core.  It lives in the shared layer because services may share
only ``ngnpro.models``; it imports nothing but the standard library.

A worker may also *retire*: a process whose memory has grown for good (libxml2's name
dictionary never shrinks, see docs/reliability.md finding 5) cannot give it back, so it
is replaced by a fresh fork.  The retiring worker calls :func:`announce_retirement` and
goes on serving; the supervisor forks its replacement at once, and once that one calls
:func:`announce_serving` the supervisor sends the old one ``SIGUSR2`` (the hand-over).
The old worker then stops accepting, finishes its requests and exits with status
:data:`RETIRED`, which the supervisor takes as planned.  The listening socket, open in the
supervisor, never closes, and someone accepts on it all along: even with one worker, no
connection waits for a new process to start.
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
#: the supervisor's end of the workers' notices, inherited by each worker (None when the
#: process is not a supervised worker)
_notices: int | None = None
#: the notices a worker sends (after its pid, 8 bytes in all: one atomic pipe write)
_RETIRING, _SERVING = 1, 2
#: the signal that tells a retiring worker its replacement is serving
HANDED_OVER = signal.SIGUSR2


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


def _notify(kind: int) -> bool:
    if _notices is None:
        return False
    try:
        os.write(_notices, os.getpid().to_bytes(4, "little") + kind.to_bytes(4, "little"))
        os.kill(os.getppid(), signal.SIGUSR1)
    except OSError:
        return False
    return True


def announce_retirement() -> bool:
    """Tell the supervisor that this worker will retire: it forks the replacement now and
    sends this worker :data:`HANDED_OVER` once the replacement serves (handle that signal
    before calling this).  The worker then stops accepting, finishes its requests and
    exits with :data:`RETIRED`.  False when there is no supervisor to tell."""
    return _notify(_RETIRING)


def announce_serving() -> bool:
    """Tell the supervisor that this worker accepts connections now (the hand-over of a
    retiring predecessor); False when there is no supervisor."""
    return _notify(_SERVING)


def supervise(count: int, run: Callable[[int], int | None], log: logging.Logger) -> int:
    """Fork ``count`` workers, each calling ``run(index)`` (its return value is the exit
    status, ``None`` meaning 0); restart a worker that dies; replace one that retires (see
    :func:`announce_retirement`) at once; on SIGTERM or SIGINT stop them all and return 0
    once they are gone (killing those still there after ``STOP_GRACE``)."""
    global _notices
    children: dict[int, int] = {}
    retiring: set[int] = set()  # announced, still finishing their requests
    predecessor: dict[int, int] = {}  # replacement pid -> the retiring worker it replaces
    stopping = False
    parent = os.getpid()
    held_signals = {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1}
    notices_r, notices_w = os.pipe()
    os.set_blocking(notices_r, False)

    def spawn(index: int) -> int:
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
        return pid

    def notice(_signum: int, _frame: object) -> None:
        """A worker will retire: start its replacement now; a replacement serves: hand
        over (the predecessor stops accepting and drains)."""
        try:
            data = os.read(notices_r, 4096)
        except BlockingIOError:
            return
        for at in range(0, len(data) - 7, 8):
            pid = int.from_bytes(data[at:at + 4], "little")
            kind = int.from_bytes(data[at + 4:at + 8], "little")
            index = children.get(pid)
            if index is None or stopping:
                continue
            # this runs in the middle of the main loop: nothing may raise out of it
            if kind == _SERVING:
                old = predecessor.pop(pid, None)
                if old in children:
                    log.info("worker %d (pid %d) serves; pid %d stops accepting", index, pid, old)
                    try:
                        os.kill(old, HANDED_OVER)
                    except ProcessLookupError:
                        pass
            elif kind == _RETIRING and pid not in retiring:
                log.info("worker %d (pid %d) is retiring; starting its replacement", index, pid)
                try:
                    predecessor[spawn(index)] = pid
                except OSError as exc:  # replaced when it exits; it stops waiting after a while
                    log.error("cannot fork the replacement of worker %d: %s", index, exc)
                    continue
                retiring.add(pid)

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
    signal.signal(signal.SIGUSR1, notice)
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
        predecessor.pop(pid, None)  # a replacement that died before serving: its restart is none
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
