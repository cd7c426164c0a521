"""Property tests of every decoder that reads bytes from the network (hypothesis).

The same properties as the fuzz harnesses (fuzz/<target>.py, whose ``TestOneInput`` each
test calls): a decoder returns a value or raises its module's own parse error, never
anything else; it stays within a time bound; where a writer exists, parse -> write -> parse
gives the same value. Inputs are built from each protocol's grammar (fields, separators,
white space and the characters that matter) and from the seed corpora with random edits,
within a small example budget so the suite stays fast; the long runs are ``scripts/fuzz``.
"""

from __future__ import annotations

import json

import dns.message
import dns.rdatatype
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz import (
    digest,
    enumdns_query,
    framing,
    mediaproxy_control,
    ngnpro_soap,
    sdp,
    sip_grammar,
    sip_message,
)
from fuzz._common import seeds

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- shared pieces --------------------------------------------------------------------------------

#: characters that separate, quote or escape in the text protocols, and a few that should not
#: appear at all
SPECIAL = " \t;,:<>\"\\%@[]=?&/*.+-_!~'`()\r\n\x00\x7f\u00e9\udcff"
text = st.text(alphabet=st.sampled_from(SPECIAL) | st.characters(min_codepoint=48, max_codepoint=122),
               max_size=40)
token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
                min_size=1, max_size=12)
space = st.sampled_from([" ", " ", " ", "  ", "\t", " \t", "\r\n ", ""])


def edited(corpus: list[bytes]) -> st.SearchStrategy[bytes]:
    """A seed with random edits: bytes inserted, runs deleted or repeated, the tail cut."""

    @st.composite
    def build(draw) -> bytes:
        data = bytearray(draw(st.sampled_from(corpus)))
        for op, where, what in draw(st.lists(st.tuples(st.integers(0, 3), st.floats(0, 1),
                                                       st.binary(max_size=12)), max_size=5)):
            pos = int(where * len(data))
            if op == 0:
                data[pos:pos] = what
            elif op == 1:
                del data[pos:pos + len(what) + 1]
            elif op == 2:
                data[pos:pos] = bytes(data[pos:pos + 4]) * (len(what) * 40)
            else:
                del data[pos:]
        return bytes(data)

    return build()


# -- SIP messages ---------------------------------------------------------------------------------

host = st.sampled_from(["example.com", "192.0.2.1", "[2001:db8::1]", "h", "EXAMPLE.com"]) | token
uri = st.builds(lambda s, u, h, p, params: f"{s}:{u}{h}{p}{params}",
                st.sampled_from(["sip", "sips", "SIP", "tel", "urn"]),
                st.sampled_from(["", "alice@", "a:pw@", "%41b@", "+1555@"]) | token.map(lambda t: t + "@"),
                host, st.sampled_from(["", ":5060", ":0", ":99999", ":x"]),
                st.lists(st.sampled_from([";lr", ";transport=tcp", ";maddr=h", ";user=phone", ";x"]) | text.map(
                    lambda t: ";" + t), max_size=3).map("".join))
name_addr = st.builds(lambda d, u, p: f"{d}<{u}>{p}" if d is not None else f"{u}{p}",
                      st.none() | st.sampled_from(['"Alice" ', "Bob ", '"a\\"b" ', '"x', ""]) | text,
                      uri, st.sampled_from(["", ";tag=abc", ";tag=1;tag=2", ";expires=60;q=0.5"]) | text)
via = st.builds(lambda t, s1, h, p, b: f"SIP/2.0/{t}{s1}{h}{p}{b}",
                st.sampled_from(["UDP", "TCP", "TLS", "udp", "X"]) | token, space, host,
                st.sampled_from(["", ":5060", ": 5060", ":65536"]),
                st.sampled_from([";branch=z9hG4bK1", ";branch=z9hG4bK1;rport", ";received=1.2.3.4;rport=5"]) | text)
HEADERS = {
    "Via": via, "v": via, "From": name_addr, "f": name_addr, "To": name_addr, "t": name_addr,
    "Contact": name_addr | st.just("*"), "m": name_addr, "Route": name_addr,
    "Record-Route": name_addr, "Call-ID": token | text, "i": token,
    "CSeq": st.builds(lambda n, m: f"{n} {m}", st.sampled_from(["1", "0", "4294967296", "-1", "2"]),
                      st.sampled_from(["INVITE", "REGISTER", "ACK", "BYE"]) | token),
    "Max-Forwards": st.sampled_from(["70", "0", "256", "x", ""]),
    "Expires": st.sampled_from(["3600", "0", "-1", "99999999999"]),
    "Content-Type": st.sampled_from(["application/sdp", "text/plain"]),
    "X-Any": text, "Authorization": text,
}


@st.composite
def sip_messages(draw) -> bytes:
    if draw(st.booleans()):
        start = f"{draw(st.sampled_from(['INVITE', 'REGISTER', 'OPTIONS', 'ACK']) | token)} {draw(uri)} " \
                f"{draw(st.sampled_from(['SIP/2.0', 'SIP/3.0', 'sip/2.0', 'SIP/2.0 ']))}"
    else:
        start = f"SIP/2.0 {draw(st.sampled_from(['200', '180', '99', '700', '2000']))} {draw(text)}"
    names = draw(st.lists(st.sampled_from(sorted(HEADERS)), min_size=3, max_size=12))
    required = ["Via", "From", "To", "Call-ID", "CSeq"] if draw(st.booleans()) else []
    lines = [f"{n}:{draw(space)}{draw(HEADERS[n])}" for n in required + names]
    body = draw(st.binary(max_size=60))
    length = draw(st.sampled_from([None, len(body), len(body) + 1, 0]))
    if length is not None:
        lines.append(f"Content-Length: {length}")
    eol = draw(st.sampled_from(["\r\n", "\r\n", "\n"]))
    return (start + eol + eol.join(lines) + eol + eol).encode("utf-8", "surrogateescape") + body


@SETTINGS
@given(sip_messages() | edited(seeds("sip_message")))
def test_sip_message(data: bytes) -> None:
    sip_message.TestOneInput(data)


@SETTINGS
@given(st.one_of(uri.map(lambda t: b"\x00" + t.encode("utf-8", "surrogateescape")),
                 name_addr.map(lambda t: b"\x01" + t.encode("utf-8", "surrogateescape")),
                 via.map(lambda t: b"\x02" + t.encode("utf-8", "surrogateescape")),
                 st.lists(st.tuples(space, token, st.none() | text | token), max_size=4).map(
                     lambda ps: b"\x03" + "".join(f"{s};{n}" + (f"={v}" if v is not None else "")
                                                  for s, n, v in ps).encode("utf-8", "surrogateescape")),
                 edited(seeds("sip_grammar"))))
def test_sip_grammar(data: bytes) -> None:
    sip_grammar.TestOneInput(data)


# -- SDP --------------------------------------------------------------------------------------------

sep = st.sampled_from([" ", " ", " ", "\t", "  ", "\x1f"])
ip = st.sampled_from(["IN IP4 192.0.2.1", "IN IP6 2001:db8::1", "IN IP4 0.0.0.0", "IN IP4 224.2.1.1/127",
                      "IN IP4 host.example", "IN IP7 x", "IN"])


@st.composite
def sdp_bodies(draw) -> bytes:
    lines = ["v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-"]
    if draw(st.booleans()):
        lines.append("c=" + draw(ip))
    lines.append("t=0 0")
    for _ in range(draw(st.integers(0, 3))):
        s1, s2, s3 = draw(sep), draw(sep), draw(sep)
        port = draw(st.sampled_from(["4000", "0", "65535", "65536", "4000/2", "-1", "x", "\u0664"]))
        fmts = draw(st.lists(st.sampled_from(["0", "8", "101", "96", "x"]), max_size=3))
        lines.append(f"m={draw(st.sampled_from(['audio', 'video', 'image']))}{s1}{port}{s2}"
                     f"{draw(st.sampled_from(['RTP/AVP', 'UDP/TLS/RTP/SAVPF', 'udptl']))}{s3}{' '.join(fmts)}")
        for _ in range(draw(st.integers(0, 3))):
            lines.append(draw(st.sampled_from([
                "c=IN IP4 192.0.2.2", "a=rtcp:4001", "a=rtcp:4001 IN IP4 192.0.2.9", "a=rtcp:x", "a=rtcp-mux",
                "a=sendonly", "a=inactive", "a=rtpmap:96 H264/90000", "a=rtpmap:101", "a=candidate:1 1 UDP 1 h 1 typ host",
                "a=ice-ufrag:x"])))
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    return (eol.join(lines) + eol).encode()


@SETTINGS
@given(sdp_bodies() | edited(seeds("sdp")))
def test_sdp(data: bytes) -> None:
    sdp.TestOneInput(data)


# -- digest credentials -----------------------------------------------------------------------------

digest_value = st.one_of(token, st.text(max_size=20).map(lambda t: '"' + t.replace('"', '\\"') + '"'), text)


@st.composite
def credentials(draw) -> bytes:
    names = ["username", "realm", "nonce", "uri", "response", "algorithm", "qop", "nc", "cnonce", "opaque"]
    params = draw(st.lists(st.tuples(st.sampled_from(names) | token, digest_value), max_size=10))
    joiner = draw(st.sampled_from([", ", ",", " , ", ",\r\n "]))
    scheme = draw(st.sampled_from(["Digest", "digest", "Basic", "", "Digest "]))
    return (scheme + " " + joiner.join(f"{n}={v}" for n, v in params)).encode("utf-8", "surrogateescape")


@SETTINGS
@given(credentials() | edited(seeds("digest")))
def test_digest(data: bytes) -> None:
    digest.TestOneInput(data)


# -- stream framing ---------------------------------------------------------------------------------


@SETTINGS
@given(st.integers(0, 255),
       st.lists(st.sampled_from(seeds("sip_message")) | sip_messages()
                | st.sampled_from([b"\r\n", b"\r\n\r\n", b"Content-Length: 5\r\nl: 6\r\n\r\n", b"x" * 5000])
                | st.binary(max_size=30), max_size=6))
def test_framing(sizes: int, parts: list[bytes]) -> None:
    framing.TestOneInput(bytes([sizes]) + b"".join(parts))


# -- ENUM DNS queries -------------------------------------------------------------------------------

labels = st.lists(st.sampled_from(list("0123456789") + ["x", "E164", "example", "*", "\\.", "a" * 63]),
                  min_size=0, max_size=14)
zones = st.sampled_from(["0.2.1.3.e164.arpa", "e164.arpa", "example.com", "sub.example.com", "example.org", ""])


@st.composite
def queries(draw) -> bytes:
    name = ".".join(draw(labels) + [draw(zones)]).strip(".") or "."
    rtype = draw(st.sampled_from(["NAPTR", "A", "AAAA", "SOA", "NS", "ANY", "AXFR", "TXT", "SRV", "CNAME", "OPT",
                                  "MAILA"]))
    kw = draw(st.sampled_from([{}, {"use_edns": 0}, {"use_edns": 0, "payload": 600},
                               {"use_edns": 0, "want_dnssec": True}, {"use_edns": 1}]))
    try:
        q = dns.message.make_query(name, dns.rdatatype.from_text(rtype), **kw)
    except Exception:  # noqa: BLE001 - a name dnspython refuses: send its root instead
        q = dns.message.make_query(".", rtype)
    q.id = draw(st.integers(0, 65535))
    wire = bytearray(q.to_wire())
    flags = draw(st.none() | st.integers(0, 65535))
    if flags is not None:
        wire[2:4] = flags.to_bytes(2, "big")
    return bytes(wire)


@SETTINGS
@given(queries() | edited(seeds("enumdns_query")))
def test_enumdns_query(data: bytes) -> None:
    enumdns_query.TestOneInput(data)


# -- NGNPro SOAP ------------------------------------------------------------------------------------

#: bits of section-5 encoding to put into a real request
SOAP_BITS = [
    '<x xsi:type="xsd:int">1</x>', '<item xsi:type="xsd:string">a</item>', 'xsi:nil="true"', ' href="#id1"',
    '<multiRef id="id1">7</multiRef>', ' SOAP-ENC:arrayType="xsd:string[3]"', ' SOAP-ENC:position="[5]"',
    ' SOAP-ENC:offset="[99999999]"', ' xsi:type="SOAP-ENC:Array"', ' xsi:type="apache:Map"', "&amp;", "&#13;",
    "<![CDATA[x]]>", "<!-- c -->", "1e400", "-0", "true", " ", "\u00e9", "<a><a><a></a></a></a>",
]


@st.composite
def soap_requests(draw) -> bytes:
    doc = draw(st.sampled_from(seeds("ngnpro_soap"))).decode()
    for _ in range(draw(st.integers(1, 4))):
        bit = draw(st.sampled_from(SOAP_BITS))
        at = draw(st.sampled_from([m for m in range(len(doc)) if doc[m] in "<>\""] or [0]))
        doc = doc[:at] + bit + doc[at:]
    for old in draw(st.lists(st.sampled_from(['">', "</item>", "7", "alice", "xsd:int", "xsd:string"]), max_size=2)):
        doc = doc.replace(old, draw(st.sampled_from(["", "x", '" >', "xsd:boolean", "ns4:SipAccount"])), 1)
    return doc.encode()


@SETTINGS
@given(soap_requests() | edited(seeds("ngnpro_soap")))
def test_ngnpro_soap(data: bytes) -> None:
    ngnpro_soap.TestOneInput(data)


# -- media relay control ----------------------------------------------------------------------------

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                           lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
                           max_leaves=8)
stream_obj = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["audio", "video", "", "x" * 40]) | json_values,
    "ip": st.sampled_from(["192.0.2.1", "2001:db8::1", "", "host"]) | json_values,
    "port": st.sampled_from([0, 4000, 65535, 65536, -1, True, "4000"]) | json_values,
    "rtcp_port": st.sampled_from([0, 4001, None]) | json_values,
    "rtcp_ip": st.sampled_from(["", "192.0.2.9", "x"]) | json_values,
    "codec": st.sampled_from(["PCMU", "", None]) | json_values,
    "direction": st.sampled_from(["sendrecv", "inactive", "sideways", None]) | json_values,
    "rtcp_mux": st.sampled_from([True, False, 1, None]) | json_values,
})
request_obj = st.fixed_dictionaries({"command": st.sampled_from(["update", "remove", "ping", "other"]) | json_values}, optional={
    "id": json_values, "call_id": st.sampled_from(["c1", "", "x" * 300]) | json_values,
    "from_tag": st.sampled_from(["f", ""]) | json_values, "to_tag": st.sampled_from(["t", ""]) | json_values,
    "direction": st.sampled_from(["offer", "answer", "x"]) | json_values,
    "reason": st.sampled_from(["bye", ""]) | json_values,
    "streams": st.lists(stream_obj, max_size=3) | json_values,
})


@SETTINGS
@given(request_obj.map(lambda o: json.dumps(o).encode()) | edited(seeds("mediaproxy_control")))
def test_mediaproxy_control(data: bytes) -> None:
    mediaproxy_control.TestOneInput(data)
