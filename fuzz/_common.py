"""What every harness shares: the per-input time bound and the failure types.

A harness's ``TestOneInput`` raises on a property violation: `Hang` when an input took longer
than the bound, `Violation` (an AssertionError) when the decoder raised an error other than
its own parse error or a round trip changed the value. Anything else escaping is a bug too.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: seconds one input may take (the decoders need microseconds to milliseconds)
TIME_BOUND = 1.0

CORPUS = Path(__file__).resolve().parent / "corpus"


class Hang(BaseException):  # noqa: N818 - a BaseException: a decoder's ``except Exception`` must not swallow it
    """An input took longer than the time bound."""


class Violation(AssertionError):
    """A property of the decoder does not hold for this input."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise Violation(message)


def _alarm(signum, frame) -> None:  # noqa: ARG001
    raise Hang(f"input took longer than {TIME_BOUND} s")


@contextmanager
def time_bound(seconds: float | None = None) -> Iterator[None]:
    """Raise `Hang` when the body runs longer than ``seconds`` (SIGALRM interrupts Python code;
    a C call that returns late is caught by the elapsed-time check on the way out)."""
    limit = TIME_BOUND if seconds is None else seconds
    old = signal.getsignal(signal.SIGALRM)
    if old is not _alarm:
        signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    start = time.perf_counter()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if old is not _alarm and old is not None:  # (None: a handler set outside Python, e.g.
            signal.signal(signal.SIGALRM, old)      # libFuzzer's: ours stays installed)
    elapsed = time.perf_counter() - start
    if elapsed > limit:
        raise Hang(f"input took {elapsed:.2f} s (bound {limit} s)")


def expect_only(errors: tuple[type[BaseException], ...], fn, *args):
    """``fn(*args)``: its value, or None when it raised one of ``errors``; any other
    exception becomes a `Violation` (with the original chained)."""
    try:
        return fn(*args)
    except errors:
        return None
    except Hang:
        raise
    except Exception as exc:
        raise Violation(f"{getattr(fn, '__qualname__', fn)} raised {type(exc).__name__}: {exc}"[:500]) from exc


def text_of(data: bytes) -> str:
    """Network bytes as the SIP decoders see them (UTF-8, undecodable bytes kept)."""
    return data.decode("utf-8", "surrogateescape")


def seeds(target: str) -> list[bytes]:
    """The seed corpus of ``target`` (sorted by file name)."""
    folder = CORPUS / target
    return [p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()] if folder.is_dir() else []
