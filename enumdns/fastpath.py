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
_COOKIE = 10
#: mapping type -> the NAPTR service field (length octet and bytes)
_SERVICES: dict[str, bytes] = {}
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
    service = _SERVICES.get(mapping_type)
    if service is None:  # a handful of mapping types: their field is worked out once
        field = enumservice(mapping_type).encode()
        if len(field) > 255:
            raise BadMapping(f"enumservice too long for a NAPTR: {mapping_type!r}")
        service = bytes([len(field)]) + field
        if len(_SERVICES) < 1024:
            _SERVICES[mapping_type] = service
    rx = regexp(mapto).encode()
    if len(rx) > 255:
        raise BadMapping(f"mapping too long for a NAPTR: {mapto!r}")
    prio = max(0, min(int(priority), 65535))
    return struct.pack("!HHBB", prio, prio, 1, 117) + service + bytes([len(rx)]) + rx + b"\x00"  # 117: flag "u"


def fast_respond(wire: bytes, zones: dict[bytes, Zone], tcp: bool,
                 max_depth: int = 255) -> tuple[bytes, Zone | None, int] | None:
    """(response, zone, rcode) for a plain ENUM query, or None for the general path.
    ``zones`` maps origins in lower-case wire form (:attr:`Zone.key`) to zones; ``max_depth``
    is the label count of the deepest origin, root included (longer suffixes of the name need
    not be tried)."""
    n = len(wire)
    if n < 17 or wire[2] & 0xFE or wire[3] & 0x0F or wire[4:10] != b"\x00\x01\x00\x00\x00\x00":
        return None
    arcount = (wire[10] << 8) | wire[11]
    if arcount > 1:
        return None
    # walk the labels; only their offsets are kept (a label's bytes are never copied)
    starts = []
    pos = 12
    try:
        length = wire[pos]
        while length:
            if length > 63:
                return None
            starts.append(pos)
            pos += 1 + length
            length = wire[pos]
    except IndexError:  # the name runs past the datagram
        return None
    starts.append(pos)  # the root label
    pos += 1
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

    # the name in lower case (length octets are below 64, so ``lower`` leaves them alone);
    # a zone's key is its origin in that form: a suffix of the name starting at a label
    name = wire[12:pos].lower()
    zone = None
    get = zones.get
    # no zone is deeper than the deepest origin: skip suffixes longer than that
    for i in range(max(0, len(starts) - max_depth), len(starts)):
        zone = get(name[starts[i] - 12:])
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
    # below the origin an E.164 number is ``depth`` one-digit labels, 2 * depth bytes (no
    # label is empty, so that length leaves each exactly one byte): 1 d 1 d ...
    below = name[: starts[depth] - 12]
    digits = below[::-2]  # the digits, most significant first (the name lists them last)
    enum = len(below) == 2 * depth and digits.isdigit()
    answers: list[bytes] = []
    if not enum:
        rcode = _NXDOMAIN
    else:
        number = zone.prefix + digits.decode()
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
        offset = starts[depth]
        soa = zone.soa_wire()
        authority = (struct.pack("!H", 0xC000 | offset) + _SOA_TYPE_CLASS
                     + struct.pack("!IH", zone.negative_ttl(), len(soa)) + soa)
    head = wire[:2] + bytes([0x84 | rd, cd | rcode]) + struct.pack(
        "!HHHH", 1, len(answers), 0 if answers else 1, 1 if edns else 0)
    out = b"".join((head, question, *answers, authority, edns))
    if len(out) > limit:
        return None  # the general path truncates
    return out, zone, rcode
