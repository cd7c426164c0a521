"""This process's early-row writes that have not reached the database yet, per caller (sans-I/O).

The call limit counts a caller's ``early`` and ``confirmed`` rows in the shared ``dialogs``
table, so every worker and proxy sees every call.  But the dialog store queues its writes
and applies them in batches (``flush_interval``): for up to one batch an INVITE forwarded
here has no row yet, and a call that failed here still has one.  :class:`Unflushed` is the
difference, per caller: +1 for an early row queued and not yet written, -1 for an early
row's removal queued and not yet applied.  The limit counts ``rows + unflushed``: each call
once -- by this tally until its row lands, by the row afterwards (never both: the store
settles a write's entry right after the batch holding it commits).
"""

from __future__ import annotations

__all__ = ["Unflushed"]


class Unflushed:
    """Per caller (a SipId, case-folded): queued early-row inserts minus queued removals."""

    __slots__ = ("_by_caller",)

    def __init__(self) -> None:
        self._by_caller: dict[str, int] = {}

    def add(self, caller: str, n: int = 1) -> None:
        """``n`` more (or, negative, fewer) calls of ``caller`` than its rows say."""
        key = caller.lower()
        left = self._by_caller.get(key, 0) + n
        if left:
            self._by_caller[key] = left
        else:
            self._by_caller.pop(key, None)

    def count(self, caller: str) -> int:
        """How many calls of ``caller`` its rows do not show yet (negative: rows of
        calls already over)."""
        return self._by_caller.get(caller.lower(), 0)

    def __len__(self) -> int:
        return len(self._by_caller)
