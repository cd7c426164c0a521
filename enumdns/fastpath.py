"""Wire-level answers for the query shape that dominates ENUM traffic.

A standard query for one name under an ENUM range (optionally with an EDNS(0) OPT record
and nothing else) is answered here straight from bytes: parse the header and question by
hand, look the number up, and write NAPTRs, or the SOA for NXDOMAIN/NODATA, into a
response.  It is the same answer :func:`enumdns.answer.respond` builds with dnspython, at a
tenth of the cost, which is what makes a cold cache or a million numbers fast.  Anything
else (other zones, the apex, ANY, truncation, unusual flags, compression in the question)
returns None and takes the general path.
"""

from __future__ import annotations

import struct

import dns.edns

from .enumservice import BadMapping, enumservice, regexp
from .zone import EnumZone, Zone

_NAPTR_TYPE_CLASS = b"\x00\x23\x00\x01"
_SOA_TYPE_CLASS = b"\x00\x06\x00\x01"
_MAX_UDP = 4096
_NOERROR, _NXDOMAIN, _REFUSED = 0, 3, 5
#: Query types answered here: every ordinary data type (not meta types, not ANY).
_META = frozenset({0, 41, 249, 250, 251, 252, 253, 254, 255})
_DIGITS = {bytes([c]): chr(c) for c in range(48, 58)}
_COOKIE = 10
#: EDNS option code -> whether dnspython keeps it as opaque bytes (filled in as codes are seen)
_OPAQUE_OPTIONS: dict[int, bool] = {}


def _options_ok(wire: bytes, pos: int, end: int) -> bool:
    """Whether the EDNS options in ``wire[pos:end]`` are ones the general path reads without
    refusing the query: well-formed code/length/data items, each either an option dnspython
    keeps as opaque bytes or a COOKIE of a valid length (RFC 7873 4). Anything else (a
    malformed list, an ECS or other option dnspython checks) goes the general path, which
    answers FORMERR when it is malformed."""
    while pos < end:
        if pos + 4 > end:
            return False
        code = (wire[pos] << 8) | wire[pos + 1]
        length = (wire[pos + 2] << 8) | wire[pos + 3]
        pos += 4 + length
        if pos > end:
            return False
        if code == _COOKIE:
            if length != 8 and not 16 <= length <= 40:
                return False
        else:
            opaque = _OPAQUE_OPTIONS.get(code)
            if opaque is None:
                opaque = _OPAQUE_OPTIONS[code] = dns.edns.get_option_class(code) is dns.edns.GenericOption
            if not opaque:
                return False
    return True


def naptr_rdata(mapping_type: str, mapto: str, priority: int) -> bytes:
    """RFC 3403 NAPTR rdata of a terminal E2U mapping (replacement: the root)."""
    service = enumservice(mapping_type).encode()
    rx = regexp(mapto).encode()
    if len(rx) > 255 or len(service) > 255:
        raise BadMapping(f"mapping too long for a NAPTR: {mapto!r}")
    prio = max(0, min(int(priority), 65535))
    return struct.pack("!HHB", prio, prio, 1) + b"u" + bytes([len(service)]) + service + bytes([len(rx)]) + rx + b"\x00"


def fast_respond(wire: bytes, zones: dict[tuple[bytes, ...], Zone], tcp: bool,
                 max_depth: int = 255) -> tuple[bytes, Zone | None, int] | None:
    """(response, zone, rcode) for a plain ENUM query, or None for the general path.
    ``zones`` maps lower-case origin labels to zones; ``max_depth`` is the label count of
    the deepest origin (longer suffixes of the name need not be tried)."""
    n = len(wire)
    if n < 17 or wire[2] & 0xFE or wire[3] & 0x0F or wire[4:10] != b"\x00\x01\x00\x00\x00\x00":
        return None
    arcount = (wire[10] << 8) | wire[11]
    if arcount > 1:
        return None
    labels = []
    pos = 12
    while True:
        length = wire[pos] if pos < n else 256
        if length == 0:
            pos += 1
            break
        if length > 63 or pos + 1 + length > n:
            return None
        labels.append(wire[pos + 1: pos + 1 + length].lower())
        pos += 1 + length
    if pos > 267 or pos + 4 > n:  # names are at most 255 bytes
        return None
    qtype = (wire[pos] << 8) | wire[pos + 1]
    if wire[pos + 2: pos + 4] != b"\x00\x01" or qtype in _META:
        return None
    qend = pos + 4
    edns = b""
    limit = 65535 if tcp else 512
    if arcount:
        # exactly one OPT RR, owner root, version 0, nothing after it
        if qend + 11 > n or wire[qend] != 0 or wire[qend + 1: qend + 3] != b"\x00\x29" or wire[qend + 6] != 0:
            return None
        rdlen = (wire[qend + 9] << 8) | wire[qend + 10]
        if qend + 11 + rdlen != n or (rdlen and not _options_ok(wire, qend + 11, n)):
            return None
        if not tcp:
            payload = (wire[qend + 3] << 8) | wire[qend + 4]
            limit = max(512, min(payload, _MAX_UDP))
        do_bit = wire[qend + 7] & 0x80
        edns = b"\x00\x00\x29" + struct.pack("!H", _MAX_UDP) + b"\x00\x00" + bytes([do_bit, 0]) + b"\x00\x00"
    elif qend != n:
        return None

    key = tuple(labels) + (b"",)
    zone = None
    get = zones.get
    # no zone is deeper than the deepest origin: skip suffixes longer than that
    for i in range(max(0, len(key) - max_depth), len(key)):
        zone = get(key[i:])
        if zone is not None:
            depth = i
            break
    question = wire[12:qend]
    rd = wire[2] & 0x01
    cd = wire[3] & 0x10
    if zone is None:
        head = wire[:2] + bytes([0x80 | rd, cd | _REFUSED]) + struct.pack("!HHHH", 1, 0, 0, 1 if edns else 0)
        return head + question + edns, None, _REFUSED
    if not isinstance(zone, EnumZone) or depth == 0:
        return None
    digits = []
    for label in reversed(labels[:depth]):
        d = _DIGITS.get(label)
        if d is None:
            digits = None
            break
        digits.append(d)
    answers: list[bytes] = []
    if digits is None:
        rcode = _NXDOMAIN
    else:
        number = zone.prefix + "".join(digits)
        mappings = zone._numbers(number, zone.tld)
        if mappings is None:
            rcode = _NOERROR if zone._below(number, zone.tld) else _NXDOMAIN
        else:
            rcode = _NOERROR
            if qtype == 35 and mappings:
                ttl = min((m[2] if m[2] and m[2] > 0 else zone.ttl) for m in mappings)
                head = b"\xc0\x0c" + _NAPTR_TYPE_CLASS + struct.pack("!I", ttl)
                for mtype, mapto, _ttl, priority in mappings:
                    try:
                        rdata = naptr_rdata(mtype, mapto, priority)
                    except (BadMapping, ValueError):
                        return None  # the general path logs and skips it
                    answers.append(head + struct.pack("!H", len(rdata)) + rdata)
    authority = b""
    if not answers:
        # the zone's origin is the tail of the question name: point at it
        offset = 12 + sum(1 + len(label) for label in labels[:depth])
        soa = zone.soa_wire()
        authority = (struct.pack("!H", 0xC000 | offset) + _SOA_TYPE_CLASS
                     + struct.pack("!IH", zone.negative_ttl(), len(soa)) + soa)
    head = wire[:2] + bytes([0x84 | rd, cd | rcode]) + struct.pack(
        "!HHHH", 1, len(answers), 0 if answers else 1, 1 if edns else 0)
    out = b"".join((head, question, *answers, authority, edns))
    if len(out) > limit:
        return None  # the general path truncates
    return out, zone, rcode
