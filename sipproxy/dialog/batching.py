"""The dialog store's queued writes as few bulk statements as keep every call's order (sans-I/O).

The store applies a batch of call events (:mod:`.store`) in one transaction, one bulk
statement per group of events of one kind.  Grouping only *consecutive* events of a kind
gives groups of one under live traffic, where the events of many calls interleave (one
call's INVITE, another's 2xx, a third's BYE ...): a statement per event.  :func:`groups`
groups harder, yet keeps what matters -- the order of each call's own events (a call's
statements touch only its own rows, so calls do not depend on each other):

* the kinds have a fixed rank, the order of a call's life (:data:`KINDS`);
* the batch is cut into segments; within one, each kind is one group and the groups run
  by rank;
* a new segment starts when an event ranks below an event of the same call already in
  the segment (a second BYE's end after the first BYE's removal, the early row of an
  INVITE retried with the same Call-ID after a failed one): within a segment every call's
  events are in rank order, so running the groups by rank runs each call's events in the
  order they came.

Calls are told apart by Call-ID alone (the statements match rows by Call-ID and tags, so
two rows of one Call-ID are ordered like one call's: safe, if not always necessary).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["KINDS", "call_of", "groups"]

#: the events, in the order of a call's life: its early row, a new ring time, the failed
#: call's removal; the answer (confirmed; answered: after a restart), target and session
#: refreshes, the BYE (ended) and its answer (removed)
KINDS = ("early", "ringing", "failed", "confirmed", "answered", "refreshed", "ended", "removed")
_RANK = {kind: n for n, kind in enumerate(KINDS)}


def call_of(kind: str, data: object) -> str:
    """The Call-ID of an event (the store's shapes: ``early`` a (DialogInfo, bound) pair,
    ``confirmed`` a DialogInfo, the others tuples starting with the Call-ID)."""
    if kind == "confirmed":
        return data.call_id  # type: ignore[attr-defined]
    if kind == "early":
        return data[0].call_id  # type: ignore[index]
    return data[0]  # type: ignore[index]


def groups(items: Iterable[tuple[str, object]]) -> list[tuple[str, list[object]]]:
    """``items`` (kind, data) as (kind, the data of a group), to run in this order; each
    call's events keep their order, the events of one kind within a segment are one group."""
    out: list[tuple[str, list[object]]] = []
    segment: list[list[object]] = []
    ranks: dict[str, int] = {}
    for kind, data in items:
        rank = _RANK[kind]
        call = call_of(kind, data)
        if not segment or ranks.get(call, -1) > rank:
            _close(segment, out)
            segment = [[] for _ in KINDS]
            ranks = {}
        segment[rank].append(data)
        ranks[call] = rank
    _close(segment, out)
    return out


def _close(segment: list[list[object]], out: list[tuple[str, list[object]]]) -> None:
    out.extend((kind, group) for kind, group in zip(KINDS, segment, strict=False) if group)
