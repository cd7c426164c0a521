"""Which digest challenges a client is offered, and in which order (RFC 8760 2.3/2.4, RFC 7616 3.7).

A server that knows several algorithms sends one challenge per algorithm, most preferred
first (RFC 8760 2.4, RFC 7616 3.7), and a client SHOULD answer the topmost one it supports
(RFC 8760 2.3).  Not every client copes: baresip 1.0 (Debian 12) reads *every* challenge and
gives up at the first algorithm it does not know ("Register: Function not implemented") --
whether SHA-256 is offered above or below MD5 -- and sipp answers the topmost challenge,
MD5 only.  Kamailio offers MD5 alone, so those clients work there.

Leading with MD5 for everybody would not help baresip, and would retire SHA-256: a client
that follows RFC 8760 answers the topmost algorithm it supports, so behind an MD5 first
challenge it never uses SHA-256.  So what is offered is learnt per client:

* unknown clients get every configured algorithm in the configured order (SHA-256, then MD5
  by default), and so does a client that last authenticated with SHA-256;
* a client that cannot do anything but MD5 gets the MD5 challenge alone, as from Kamailio.
  That is a client that *failed* a challenge offering more than MD5 -- it answered with a
  wrong response in another algorithm, or with credentials we cannot read, or it came back
  with a new request without credentials (another Call-ID or CSeq: not a retransmission)
  while the challenge had stayed unanswered for ``PATIENCE`` seconds, which is what baresip
  and sipp do because they never answer it -- and a client whose credentials were in MD5
  (it authenticated with MD5 though SHA-256 was on offer, or answered in MD5 a nonce we no
  longer accept: stale, or issued before a restart emptied this memory).  baresip retries
  30-60 s after its failed attempt (same Call-ID, next CSeq) and registers then.

A client is known by two keys, looked up in this order: the *device* (source
``transport:ip:port`` plus the address-of-record the request claims: To for REGISTER, From
otherwise) and the *account* (the address-of-record alone, for a device seen from a new
address: a new TCP connection, a restarted sipp).  The memory is a bounded LRU table per
worker process; losing an entry (eviction, restart) costs an MD5-only client one failed
attempt, unless it comes back with MD5 credentials.  A SHA-256 client mistaken for an
MD5-only one (a wrong password typed in it, say) authenticates with MD5 until its entry is
forgotten.  This is a compatibility measure, not a security boundary: an attacker on the
path could strip the SHA-256 challenge anyway.

Sans-I/O: the caller says what it saw (:meth:`ChallengeOrder.observe`) and what it sent
(:meth:`ChallengeOrder.challenged`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

from sipproxy.sip import digest
from sipproxy.sip.digest import AuthResult

__all__ = ["ChallengeOrder", "FALLBACK"]

#: what a client that cannot do the other algorithms is offered, alone (every digest client does MD5)
FALLBACK = "MD5"

#: seconds a challenge must have stayed unanswered before a new request without credentials
#: counts as the client's failure to answer it: a client that can answer does so within a
#: round trip, while requests a client sends together (a REGISTER and a SUBSCRIBE at boot,
#: two lines of one phone) arrive within milliseconds of each other
PATIENCE = 2.0


class _Entry:
    """What is known of one key: the algorithm the client last used or fell back to
    (``None``: nothing yet) and, while a challenge offering more than the fallback is
    unanswered, the request it answered (Call-ID and CSeq number, to tell a retransmission
    from a new attempt) and when."""

    __slots__ = ("algorithm", "pending", "since")

    def __init__(self) -> None:
        self.algorithm: str | None = None
        self.pending: str | None = None
        self.since = 0.0


class ChallengeOrder:
    """The challenges to offer each client, learnt from how it answered them.

    ``algorithms``: those offered, in the configured order (what unknown clients get).
    ``adaptive=False`` (or a single algorithm, or no MD5 among them) always offers them."""

    def __init__(self, algorithms: Sequence[str], *, adaptive: bool = True, capacity: int = 50_000,
                 patience: float = PATIENCE, clock: Callable[[], float] = time.monotonic) -> None:
        self.algorithms = tuple(a.upper() for a in algorithms)
        self.adaptive = adaptive and len(self.algorithms) > 1 and FALLBACK in self.algorithms
        self.capacity = capacity
        self.patience = patience
        self._clock = clock
        self._memory: OrderedDict[str, _Entry] = OrderedDict()
        # what a client that used each algorithm is offered, made once: MD5 alone, another
        # algorithm first and then the rest as configured
        self._offers = {a: (a, *(b for b in self.algorithms if b != a)) for a in self.algorithms}
        self._offers[FALLBACK] = (FALLBACK,)

    @staticmethod
    def keys(source: str, aor: str) -> tuple[str, ...]:
        """The memory keys of a request from ``source`` (``transport:ip:port``, may be empty)
        claiming ``aor`` (``user@domain``, may be empty): the device's, then the account's."""
        aor = aor.lower()
        if not aor:
            return (source,) if source else ()
        return (f"{source}|{aor}", aor) if source else (aor,)

    # -- the offer ------------------------------------------------------------------------

    def known(self, keys: Iterable[str]) -> str | None:
        """The algorithm the client known by ``keys`` used or fell back to, if known."""
        if self.adaptive:
            memory = self._memory
            for key in keys:
                entry = memory.get(key)
                if entry is not None and entry.algorithm is not None:
                    return entry.algorithm
        return None

    def order(self, keys: Iterable[str]) -> tuple[str, ...]:
        """The algorithms to challenge the client known by ``keys`` with, in order."""
        alg = self.known(keys)
        return self.algorithms if alg is None else self._offers[alg]

    # -- learning -------------------------------------------------------------------------

    def observe(self, keys: Sequence[str], result: AuthResult, attempt: str) -> None:
        """Learn from the outcome of checking a request of the client known by ``keys``;
        ``attempt`` identifies the request (its Call-ID and CSeq number)."""
        if not self.adaptive or not keys:
            return
        status = result.status
        memory = self._memory
        if status == digest.MISSING or status == digest.MALFORMED:
            # No usable answer.  A new request without credentials while our challenge has
            # stayed unanswered for a while means the client could not answer it (a
            # retransmission is the same attempt; a request sent together with the
            # challenged one arrives too soon to tell); unreadable credentials in answer to
            # it, likewise.
            now = -1.0
            for key in keys:
                entry = memory.get(key)
                if entry is None or entry.pending is None:
                    continue
                if status == digest.MISSING:
                    if entry.pending == attempt:
                        continue
                    if now < 0:
                        now = self._clock()
                    if now - entry.since < self.patience:
                        continue
                entry.algorithm, entry.pending = FALLBACK, None
            return
        # The client answered (rightly, wrongly, with an old nonce, ...) in some algorithm:
        # that is the one it uses -- except that a wrong response in another algorithm than
        # the fallback is a client that cannot compute it (or a wrong password: MD5 then too).
        alg = result.algorithm.upper().removesuffix("-SESS")
        if status == digest.WRONG and result.reason == digest.BAD_RESPONSE:
            alg = FALLBACK
        known = alg if alg in self._offers else None
        for key in keys:
            entry = self._entry(key)
            if known is not None:
                entry.algorithm = known
            entry.pending = None

    def challenged(self, keys: Sequence[str], order: Sequence[str], attempt: str) -> None:
        """A challenge offering ``order`` went to the client known by ``keys`` in answer to
        the request ``attempt``."""
        if not self.adaptive or not keys:
            return
        if tuple(order) == (FALLBACK,):
            for key in keys:
                entry = self._memory.get(key)
                if entry is not None:
                    entry.pending = None
            return
        now = self._clock()
        for key in keys:
            entry = self._entry(key)
            entry.pending, entry.since = attempt, now

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
