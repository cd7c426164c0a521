"""Fuzz target: DNS query datagrams (`enumdns.answer.respond`, with its fast path
`enumdns.fastpath.fast_respond` for plain ENUM queries), over UDP and TCP.

`respond` has no parse error of its own: by contract garbage gets FORMERR when it has a
header to answer and nothing when it does not. Properties: it never raises; the time bound;
every answer is a well-formed DNS response to that query (same id, QR set, within the UDP
size limit: 512 bytes without EDNS, the advertised size up to 4096 with it); the fast path
answers exactly as the general path does (the same zones without ``zone_keys``).
"""

from __future__ import annotations

import dns.message

from enumdns.answer import respond
from fuzz._common import check, expect_only, time_bound
from tests.enumdns.zones import Authority, enum_zone, record_zone

FAST = Authority(enum_zone(), record_zone())
SLOW = Authority(enum_zone(), record_zone(), fast=False)


def _rrsets(section) -> list:
    return [(r.name.to_text(), r.rdtype, r.ttl, sorted(x.to_text() for x in r)) for r in section]


def view(msg: dns.message.Message) -> tuple:
    return (msg.id, msg.flags, msg.rcode(), msg.edns, msg.ednsflags, msg.payload if msg.edns >= 0 else 0,
            [(q.name.to_text(), q.rdtype, q.rdclass) for q in msg.question],
            _rrsets(msg.answer), _rrsets(msg.authority))


def _check_answer(query: bytes, wire: bytes | None, tcp: bool) -> dns.message.Message | None:
    if wire is None:
        return None
    check(len(query) >= 12, "an answer to a datagram without a DNS header")
    msg = expect_only((), dns.message.from_wire, wire)
    check(msg.id == int.from_bytes(query[:2], "big"), "answer id is not the query id")
    check(msg.flags & 0x8000, "answer without QR")
    if not tcp:
        limit = 512
        if msg.edns >= 0 and len(query) > 12:
            try:
                q = dns.message.from_wire(query)
                limit = max(512, min(q.payload, 4096)) if q.edns >= 0 else 512
            except Exception:  # noqa: BLE001 - a query only the fast path read
                limit = 4096
        check(len(wire) <= limit, f"UDP answer of {len(wire)} bytes over the {limit}-byte limit")
    return msg


def TestOneInput(data: bytes) -> None:  # noqa: N802
    with time_bound():
        for tcp in (False, True):
            fast = expect_only((), respond, data, FAST, tcp)
            slow = expect_only((), respond, data, SLOW, tcp)
            a = _check_answer(data, fast.wire, tcp)
            b = _check_answer(data, slow.wire, tcp)
            check((a is None) == (b is None), "only one of the fast and the general path answers")
            if a is not None:
                check(view(a) == view(b), f"fast path answers differently:\n{view(a)!r}\n{view(b)!r}")


if __name__ == "__main__":
    from fuzz.run import main_for

    main_for(__name__)
