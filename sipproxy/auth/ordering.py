"""Which digest algorithm a challenge offers first, per client (RFC 8760 2.3/2.4, RFC 7616 3.7).

A server that knows several algorithms sends one challenge per algorithm, most preferred
first (RFC 8760 2.4, RFC 7616 3.7), and a client SHOULD answer the topmost one it supports
(RFC 8760 2.3).  Not every client does: baresip 1.0 (Debian 12) and sipp answer only the
first challenge, and when that is SHA-256 they give up ("Register: Function not
implemented") -- although MD5, which they can do, is offered right below.  Kamailio offers
MD5 alone, so those phones work there.

Leading with MD5 for everybody would fix them but would retire SHA-256: a client that
follows RFC 8760 picks the topmost algorithm it supports, so behind an MD5 first challenge it
would never use SHA-256.  So the order is learnt per client instead:

* unknown clients get the configured order (SHA-256 first by default);
* a client that sent credentials gets the algorithm they were in first: the one it last
  succeeded with, or the one it used with a nonce we no longer accept (stale, or issued
  before a restart emptied this memory);
* a client that *failed* a challenge led by something other than MD5 gets MD5 first from
  then on (both challenges are still offered).  Failing is: answering it with a wrong
  response in that algorithm, answering it with credentials we cannot read, or coming back
  with a new request without credentials (another Call-ID or CSeq: not a retransmission)
  while the challenge is still unanswered -- what baresip and sipp do, because they never
  answer it.  baresip retries 30-60 s later (same Call-ID, next CSeq) and registers then.

A client is known by two keys, looked up in this order: the *device* (source
``transport:ip:port`` plus the address-of-record the request claims: To for REGISTER, From
otherwise) and the *account* (the address-of-record alone, for a device seen from a new
address: a new TCP connection, a restarted sipp).  The memory is a bounded LRU table per
worker process; losing an entry (eviction, restart) costs an MD5-only client one failed
attempt.  The order is a hint, never a security boundary: every configured algorithm is
offered every time (anyone on the path could strip the SHA-256 challenge anyway).

Sans-I/O: the caller says what it saw (:meth:`ChallengeOrder.observe`) and what it sent
(:meth:`ChallengeOrder.challenged`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence

from sipproxy.sip import digest
from sipproxy.sip.digest import AuthResult

__all__ = ["ChallengeOrder", "FALLBACK"]

#: what a client that fails another algorithm is offered first (every digest client does MD5)
FALLBACK = "MD5"


class _Entry:
    """What is known of one key: the algorithm to offer first (``None``: the configured
    order) and, while a challenge led by another algorithm than the fallback is unanswered,
    the request it answered (``Call-ID`` and CSeq number), to tell a retransmission from a
    new attempt."""

    __slots__ = ("lead", "pending")

    def __init__(self) -> None:
        self.lead: str | None = None
        self.pending: str | None = None


class ChallengeOrder:
    """The order of the challenges for each client, learnt from how it answered them.

    ``algorithms``: those offered, in the configured order (the order for unknown clients).
    ``adaptive=False`` (or a single algorithm, or no MD5 among them) always uses it."""

    def __init__(self, algorithms: Sequence[str], *, adaptive: bool = True, capacity: int = 50_000) -> None:
        self.algorithms = tuple(a.upper() for a in algorithms)
        self.adaptive = adaptive and len(self.algorithms) > 1 and FALLBACK in self.algorithms
        self.capacity = capacity
        self._memory: OrderedDict[str, _Entry] = OrderedDict()
        # the order with each algorithm first (the rest as configured), made once
        self._orders = {a: (a, *(b for b in self.algorithms if b != a)) for a in self.algorithms}

    @staticmethod
    def keys(source: str, aor: str) -> tuple[str, ...]:
        """The memory keys of a request from ``source`` (``transport:ip:port``, may be empty)
        claiming ``aor`` (``user@domain``, may be empty): the device's, then the account's."""
        aor = aor.lower()
        if not aor:
            return (source,) if source else ()
        return (f"{source}|{aor}", aor) if source else (aor,)

    # -- the order ------------------------------------------------------------------------

    def lead(self, keys: Iterable[str]) -> str:
        """The algorithm to offer first to the client known by ``keys``."""
        if self.adaptive:
            memory = self._memory
            for key in keys:
                entry = memory.get(key)
                if entry is not None and entry.lead is not None:
                    return entry.lead
        return self.algorithms[0]

    def order(self, keys: Iterable[str]) -> tuple[str, ...]:
        """Every configured algorithm, ``lead(keys)`` first."""
        return self._orders[self.lead(keys)]

    # -- learning -------------------------------------------------------------------------

    def observe(self, keys: Sequence[str], result: AuthResult, attempt: str) -> None:
        """Learn from the outcome of checking a request of the client known by ``keys``;
        ``attempt`` identifies the request (its Call-ID and CSeq number)."""
        if not self.adaptive or not keys:
            return
        status = result.status
        memory = self._memory
        if status == digest.MISSING or status == digest.MALFORMED:
            # No usable answer.  A new request without credentials while our challenge is
            # unanswered means the client could not answer it (a retransmission is the same
            # attempt); unreadable credentials in answer to it, likewise.
            for key in keys:
                entry = memory.get(key)
                if entry is not None and entry.pending is not None and (
                        status == digest.MALFORMED or entry.pending != attempt):
                    entry.lead, entry.pending = FALLBACK, None
            return
        # The client answered (rightly, wrongly, with an old nonce, ...) in some algorithm:
        # lead with that one -- e.g. after a restart, whose memory is empty, a phone answering
        # the old nonce in MD5 is challenged MD5 first -- except after a wrong response in
        # another algorithm than the fallback (a client that cannot compute it), and a
        # success always sets it.
        alg = result.algorithm.upper().removesuffix("-SESS")
        if status == digest.WRONG and result.reason == digest.BAD_RESPONSE and alg != FALLBACK:
            alg = FALLBACK
        lead = alg if alg in self._orders else None
        for key in keys:
            entry = self._entry(key)
            if lead is not None:
                entry.lead = lead
            entry.pending = None

    def challenged(self, keys: Sequence[str], order: Sequence[str], attempt: str) -> None:
        """A challenge offering ``order`` went to the client known by ``keys`` in answer to
        the request ``attempt``."""
        if not self.adaptive or not keys:
            return
        if order[0] == FALLBACK:
            for key in keys:
                entry = self._memory.get(key)
                if entry is not None:
                    entry.pending = None
            return
        for key in keys:
            self._entry(key).pending = attempt

    def _entry(self, key: str) -> _Entry:
        memory = self._memory
        entry = memory.get(key)
        if entry is None:
            entry = memory[key] = _Entry()
            while len(memory) > self.capacity:
                memory.popitem(last=False)
        else:
            memory.move_to_end(key)
        return entry

    def __len__(self) -> int:
        return len(self._memory)
