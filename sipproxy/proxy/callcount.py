"""The calls a caller has in progress in this process: forwarded INVITEs not answered yet.

The call limit (``call_limit``, :func:`sipproxy.auth.policy.outgoing`) counts a caller's
calls across every worker and proxy from the ``dialogs`` table -- but a dialog row is only
written when the call is answered.  The calls still ringing are counted here, per process:
the response context of each initial INVITE the proxy forwards, until its final answer is
sent (then the dialog row, if any, takes over).  Contexts are held weakly, so a finished
call leaves nothing behind.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakSet

__all__ = ["CallsInProgress"]


class CallsInProgress:
    """Per caller (a SipId, case-folded): the contexts of its unanswered INVITEs."""

    def __init__(self) -> None:
        self._calls: dict[str, WeakSet] = {}

    def add(self, caller: str, ctx: Any) -> None:
        key = caller.lower()
        calls = self._calls.get(key)
        if calls is None:
            if len(self._calls) > 10_000:
                self._prune()
            calls = self._calls[key] = WeakSet()
        calls.add(ctx)

    def count(self, caller: str) -> int:
        calls = self._calls.get(caller.lower())
        if calls is None:
            return 0
        n = sum(1 for ctx in list(calls) if not ctx.final_sent)
        if n == 0:
            del self._calls[caller.lower()]
        return n

    def _prune(self) -> None:
        for key in [k for k, calls in self._calls.items() if not any(not c.final_sent for c in list(calls))]:
            del self._calls[key]
