"""Write the seed corpora of ``fuzz/corpus/<target>/`` (``python -m fuzz.make_corpus``).

Seeds are the RFC 4475 torture messages (tests/data/rfc4475/) and the kind of input the test
suites send: REGISTER/INVITE shaped as tests/sipproxy_registrar/support.py builds them, SDP
offers of tests/mediaproxy/test_mediaproxy_sdp.py, digest credentials of the e2e tests,
queries of tests/enumdns/test_enumdns_answer.py, SOAP envelopes shaped as
tests/ngnpro/harness.py writes them, and control lines of tests/mediaproxy. Deterministic:
running it again rewrites the same files.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from fuzz.xcap import SEEDS as XCAP_SEEDS

ROOT = Path(__file__).resolve().parent
RFC4475 = ROOT.parent / "tests" / "data" / "rfc4475"
CORPUS = ROOT / "corpus"


def _rfc4475() -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted(RFC4475.glob("*.dat"))}


def _register(auth: str = "", contacts: tuple[str, ...] = ("<sip:alice@192.0.2.10:5060>",)) -> bytes:
    lines = ["REGISTER sip:example.com SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1;rport",
             "Max-Forwards: 70", "From: <sip:alice@example.com>;tag=f1", "To: <sip:alice@example.com>",
             "Call-ID: cid-1", "CSeq: 2 REGISTER", *(f"Contact: {c}" for c in contacts), "Expires: 3600"]
    if auth:
        lines.append(f"Authorization: {auth}")
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


OFFER = (
    "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.168.1.10\r\ns=-\r\nc=IN IP4 192.168.1.10\r\n"
    "t=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=rtcp:49171 IN IP4 192.168.1.10\r\na=sendrecv\r\nm=video 51372 RTP/AVP 96\r\n"
    "c=IN IP4 192.168.1.11\r\na=rtpmap:96 H264/90000\r\na=recvonly\r\n"
)
ICE_OFFER = (
    "v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\na=ice-ufrag:abcd\r\n"
    "m=audio 4000 UDP/TLS/RTP/SAVPF 111 0\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n"
    "a=candidate:1 1 UDP 2130706431 2001:db8::1 4000 typ host\r\na=sendonly\r\n"
    "m=video 0 RTP/AVP 31\r\n"
)
HOLD = "v=0\no=bob 1 1 IN IP4 10.0.0.2\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 3456 RTP/AVP 8\na=rtcp:3457\na=inactive\n"

INVITE_SDP = (
    "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK77\r\n"
    "Max-Forwards: 70\r\nFrom: \"Alice\" <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
    "Call-ID: call-77@192.0.2.10\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@192.0.2.10:5060;transport=tcp>\r\n"
    "Record-Route: <sip:p1.example.com;lr>\r\nContent-Type: application/sdp\r\n"
    f"Content-Length: {len(OFFER)}\r\n\r\n{OFFER}"
).encode()
RESPONSE = (
    b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK77;received=198.51.100.1;rport=5062\r\n"
    b"From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag=b2\r\nCall-ID: c77\r\n"
    b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)

CREDENTIALS = [
    'Digest username="alice", realm="example.com", nonce="1700000000.abcdef", uri="sip:example.com", '
    'response="0123456789abcdef0123456789abcdef", algorithm=MD5, qop=auth, nc=00000001, cnonce="xyz", opaque="o"',
    'Digest username="alice", realm="example.com", nonce="n", uri="x", response="r"',
    'Digest username="bob\\"s", realm="ex\\\\ample", nonce="n", uri="sip:a@b", '
    'response="d41d8cd98f00b204e9800998ecf8427e", algorithm=SHA-256',
    'Digest realm="example.com",nonce="abc",algorithm=MD5,qop="auth",stale=true',
    'Basic dXNlcjpwYXNz',
]

CONTROL = [
    b'{"id": 1, "command": "update", "call_id": "c1", "from_tag": "f", "to_tag": "", "direction": "offer", '
    b'"streams": [{"type": "audio", "ip": "192.0.2.1", "port": 4000, "rtcp_port": 4001, "rtcp_ip": "", '
    b'"rtcp_mux": false, "codec": "PCMU", "direction": "sendrecv"}]}\n',
    b'{"id": 2, "command": "update", "call_id": "c1", "from_tag": "f", "to_tag": "t", "direction": "answer", '
    b'"streams": [{"type": "audio", "ip": "2001:db8::2", "port": 5000, "rtcp_mux": true}, {"type": "video", "port": 0}]}',
    b'{"id": 3, "command": "remove", "call_id": "c1", "from_tag": "f", "reason": "bye"}',
    b'{"id": "x", "command": "ping"}',
    b'{"command":"update","call_id":"x","from_tag":"a","direction":"offer","streams":[{"port":-1}]}',
]

SOAP_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\r\n'
    '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"'
    ' xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
    ' xmlns:SOAP-ENC="http://schemas.xmlsoap.org/soap/encoding/" xmlns:ns4="urn:AGProjects:NGNPro"'
    ' xmlns:ns5="urn:AGProjects:NGNPro:{port}"'
    ' SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">\r\n'
    '<SOAP-ENV:Header>\r\n<auth><username xsi:type="xsd:string">admin</username>'
    '<password xsi:type="xsd:string">admin-secret</password><admin xsi:type="xsd:boolean">true</admin></auth>\r\n'
    "</SOAP-ENV:Header>\r\n<SOAP-ENV:Body>\r\n"
)


def _soap(port: str, method: str, params: str, extra: str = "") -> bytes:
    return (SOAP_HEAD.replace("{port}", port) + f"<ns5:{method}>{params}</ns5:{method}>{extra}\r\n"
            "</SOAP-ENV:Body>\r\n</SOAP-ENV:Envelope>\r\n").encode()


SOAP = [
    _soap("Customer", "getAccount", '<id xsi:type="xsd:int">7</id>'),
    _soap("Sip", "addDomain", '<domain xsi:type="ns4:SipDomain"><domain xsi:type="xsd:string">example.com</domain>'
          '<customer xsi:type="xsd:int">1</customer></domain>'),
    _soap("Sip", "addAccount", '<account xsi:type="ns4:SipAccount"><id xsi:type="ns4:SipId">'
          '<username xsi:type="xsd:string">alice</username><domain xsi:type="xsd:string">example.com</domain></id>'
          '<password xsi:type="xsd:string">pw</password><firstName xsi:type="xsd:string">A</firstName>'
          '<groups xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="xsd:string[2]"><item xsi:type="xsd:string">free-pstn'
          '</item><item xsi:type="xsd:string">voicemail</item></groups>'
          '<properties xsi:type="SOAP-ENC:Array" SOAP-ENC:arrayType="ns4:SipProperty[1]"><item xsi:type="ns4:SipProperty">'
          '<name xsi:type="xsd:string">lang</name><value xsi:type="xsd:string">en</value></item></properties>'
          '<quota xsi:type="xsd:int">10</quota><prepaid xsi:type="xsd:boolean">false</prepaid></account>'),
    _soap("Sip", "getDomains", '<query href="#id1"/>',
          '<multiRef id="id1" xsi:type="ns4:SipDomainQuery"><domain xsi:type="xsd:string">%</domain></multiRef>'),
    _soap("Enum", "addRange", '<range xsi:type="ns4:EnumRange"><id xsi:type="ns4:EnumRangeId">'
          '<prefix xsi:type="xsd:string">3120</prefix><tld xsi:type="xsd:string">e164.arpa</tld></id>'
          '<ttl xsi:type="xsd:int">3600</ttl><size xsi:type="xsd:int">0</size></range>'),
    _soap("Dns", "addZone", '<zone xsi:type="ns4:DnsZone"><name xsi:type="xsd:string">example.com</name>'
          '<ttl xsi:type="xsd:int">3600</ttl><nameservers xsi:type="SOAP-ENC:Array" '
          'SOAP-ENC:arrayType="xsd:string[1]" SOAP-ENC:offset="[0]"><item SOAP-ENC:position="[0]">ns1.example.com'
          '</item></nameservers><info xsi:nil="true"/></zone>'),
    _soap("Customer", "addAccount", '<account xsi:type="apache:Map" xmlns:apache="http://xml.apache.org/xml-soap">'
          '<item><key xsi:type="xsd:string">firstName</key><value xsi:type="xsd:string">A</value></item></account>'),
]


def _queries() -> list[bytes]:
    import dns.flags
    import dns.message

    out = []
    for name, rtype, kw in [
        ("7.6.5.4.3.2.1.0.2.1.3.e164.arpa", "NAPTR", {}),
        ("7.6.5.4.3.2.1.0.2.1.3.E164.ARPA", "NAPTR", {"use_edns": 0, "payload": 1400}),
        ("5.5.5.0.2.1.3.e164.arpa", "NAPTR", {"use_edns": 0, "want_dnssec": True}),
        ("0.2.1.3.e164.arpa", "SOA", {}),
        ("www.example.com", "A", {}),
        ("_sip._udp.example.com", "SRV", {"use_edns": 0}),
        ("x.sub.example.com", "A", {}),
        ("example.com", "ANY", {}),
        ("example.com", "AXFR", {}),
        ("example.org", "A", {"use_edns": 1}),
    ]:
        q = dns.message.make_query(name, rtype, **kw)
        q.id = 0x1234
        q.flags &= ~dns.flags.RD if rtype == "SOA" else 0xFFFF
        out.append(q.to_wire())
    return out


def _grammar(messages: dict[str, bytes]) -> list[bytes]:
    """Header values cut out of the messages, each behind the byte that picks its parser
    (0 URI, 1 name-addr, 2 Via, 3 parameters; see fuzz/sip_grammar.py)."""
    out: list[bytes] = []
    for data in messages.values():
        head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        parts = head[0].split(b" ")
        if len(parts) == 3 and not head[0].startswith(b"SIP/"):
            out.append(b"\x00" + parts[1])
        for line in head[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                continue
            key = name.strip().lower()
            value = value.strip()
            if key in (b"from", b"to", b"contact", b"route", b"record-route", b"f", b"t", b"m"):
                out.append(b"\x01" + value)
                if b";" in value:
                    out.append(b"\x03" + value[value.find(b";"):])
            elif key in (b"via", b"v"):
                out.append(b"\x02" + value.split(b",")[0])
    return sorted(set(out))


#: MSRP streams (the first byte picks the piece size the harness feeds them in)
MSRP = [
    b"\x00MSRP a786hjs2 SEND\r\nTo-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n"
    b"From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\nMessage-ID: 87652491\r\n"
    b"Byte-Range: 1-25/25\r\nContent-Type: text/plain\r\n\r\nHey Bob, are you there?\r\n-------a786hjs2$\r\n",
    b"\x05MSRP a786hjs2 200 OK\r\nTo-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n"
    b"From-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n-------a786hjs2$\r\n",
    b"\x02MSRP dkei38sd REPORT\r\nTo-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n"
    b"From-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\nMessage-ID: 12339sdqwer\r\n"
    b"Byte-Range: 1-106/106\r\nStatus: 000 200 OK\r\n-------dkei38sd$\r\n",
    b"\x01MSRP 49fh AUTH\r\nTo-Path: msrps://alice@intra.example.com;tcp\r\n"
    b"From-Path: msrps://alice.example.com:9892/98cjs;tcp\r\nAuthorization: Digest username=\"alice\", "
    b"realm=\"intra.example.com\", nonce=\"dcd98b\", uri=\"msrps://alice@intra.example.com;tcp\", "
    b"response=\"6629fae4\", qop=auth, nc=00000001, cnonce=\"0a4f113b\"\r\n-------49fh$\r\n",
    b"\x10MSRP 7a9d1b3c SEND\r\nTo-Path: msrps://relay.example.com:2855/abc;tcp msrp://bob.invalid:1/x;ws\r\n"
    b"From-Path: msrp://a.invalid:2/y;tcp\r\nMessage-ID: m2\r\nByte-Range: 1-*/8\r\n"
    b"Content-Type: application/octet-stream\r\n\r\nabcd\r\n-------7a9d1b3c+\r\n"
    b"MSRP 7a9d1b3d SEND\r\nTo-Path: msrp://b.invalid:1/x;tcp\r\nFrom-Path: msrp://a.invalid:2/y;tcp\r\n"
    b"Message-ID: m2\r\nByte-Range: 5-4/8\r\n-------7a9d1b3d#\r\n",
]


def main() -> None:
    rfc = _rfc4475()
    suite = {"register": _register(), "register_auth": _register(f"Digest {CREDENTIALS[0][7:]}"),
             "register_star": _register(contacts=("*",)), "invite_sdp": INVITE_SDP, "ringing": RESPONSE}
    sets: dict[str, list[bytes]] = {
        "sip_message": [*rfc.values(), *suite.values()],
        "sip_grammar": _grammar({**rfc, **suite}),
        "sdp": [OFFER.encode(), ICE_OFFER.encode(), HOLD.encode(), rfc["sdp01"].split(b"\r\n\r\n", 1)[1]],
        "digest": [c.encode() for c in CREDENTIALS],
        "framing": [bytes([n]) + b"".join(m) for n, m in (
            (0, [suite["register"], b"\r\n\r\n", suite["invite_sdp"]]), (37, [suite["ringing"], b"\r\n", rfc["wsinv"]]),
            (200, [rfc["dblreq"], b"\r\n\r\n\r\n"]), (5, [rfc["clerr"]]), (99, [rfc["ncl"], suite["register"]]))],
        "enumdns_query": _queries(),
        "ngnpro_soap": SOAP,
        "mediaproxy_control": CONTROL,
        "xcap": XCAP_SEEDS,
        "msrp_message": MSRP,
    }
    for target, items in sets.items():
        folder = CORPUS / target
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for item in items:
            (folder / hashlib.sha1(item).hexdigest()[:16]).write_bytes(item)
        print(f"{target}: {len(items)} seeds")


if __name__ == "__main__":
    main()
