"""Which worker process handles a UDP datagram, and which address each worker names.

With ``[sipproxy] workers`` > 1 the kernel hands a datagram to a worker by the sender's
address, which says nothing about the call (:mod:`sipproxy.runtime.edge` hands it on);
with ``worker_ports`` each worker also has a port of its own that its Via and Record-Route
name, so that answers and in-dialog requests come to it straight.
"""

from __future__ import annotations

import re
import zlib

from sipproxy.sip.addressing import Listener

__all__ = ["owner_of", "worker_addresses"]

_CALL_ID = re.compile(rb"\r\n(?:call-id|i)[ \t]*:([^\r\n]*)", re.IGNORECASE)
#: a response's top Via (its first Via line) up to the end of the line
_TOP_VIA = re.compile(rb"\r\n(?:via|v)[ \t]*:([^\r\n]*)", re.IGNORECASE)
#: the worker number in one of our branches: ``z9hG4bK<mark>.<worker>.<random hex>``
#: (:meth:`sipproxy.runtime.edge.Core.branch_suffix`)
_BRANCH_WORKER = re.compile(rb";[ \t]*branch[ \t]*=[ \t]*z9hG4bK[^;,\s]*?\.(\d{1,3})\.[0-9a-f]{12}(?![^;,\s])",
                            re.IGNORECASE)


def owner_of(data: bytes, workers: int) -> int | None:
    """The worker that handles every UDP message of a call: chosen by Call-ID, so that
    requests, retransmissions, CANCEL, ACK and the callee's responses meet the transactions
    they belong to whichever worker the kernel woke.  None: no Call-ID.

    A response to one of our requests goes to the worker that sent the request, named in
    the branch of its top Via: that is where its client transaction is (RFC 3261 17.1.3
    matches by branch).  For a relayed request it is the Call-ID's owner anyway; a request
    a worker originates in a dialog another worker owns -- a NOTIFY after a PUBLISH, the
    cut-off's BYE -- would otherwise have every answer handed to a worker that cannot
    match it, and time out."""
    if data.startswith(b"SIP/2.0 "):
        via = _TOP_VIA.search(data)
        if via is not None:
            mark = _BRANCH_WORKER.search(via.group(1))
            if mark is not None and int(mark.group(1)) < workers:
                return int(mark.group(1))
    m = _CALL_ID.search(data)
    if m is None:
        return None
    return zlib.crc32(m.group(1).strip()) % workers


def worker_addresses(udp: list[Listener], worker: int, workers: int,
                     base: int) -> tuple[dict[Listener, Listener], list[Listener]]:
    """For worker ports from ``base`` (0: off): the address ``worker`` names instead of
    each UDP listener in ``udp`` and of each sibling's port on its host (a message handed
    over may have come in on one), and every worker's port (all of them are ours)."""
    own: dict[Listener, Listener] = {}
    every: list[Listener] = []
    if base:
        for lst in udp:
            mine = Listener("udp", lst.host, base + worker)
            own[lst] = mine
            for n in range(workers):
                theirs = Listener("udp", lst.host, base + n)
                every.append(theirs)
                own[theirs] = mine
    return own, every
