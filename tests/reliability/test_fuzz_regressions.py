"""Every input a fuzz run found failing (fuzz/regressions/<target>/) passes its harness now,
and the product bugs behind them stay fixed. See docs/reliability.md."""

from __future__ import annotations

import importlib
from pathlib import Path

import dns.edns
import dns.message
import dns.rcode
import pytest

from enumdns.answer import respond
from fuzz._common import time_bound
from fuzz.enumdns_query import FAST, SLOW
from mediaproxy.control import handle_line
from sipproxy.sip.digest import parse_auth_params, parse_credentials
from sipproxy.sip.sdp import parse, rewrite

REGRESSIONS = Path(__file__).resolve().parents[2] / "fuzz" / "regressions"
CASES = sorted(p for p in REGRESSIONS.glob("*/*") if p.is_file())


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_found_input_passes_its_harness(path: Path) -> None:
    harness = importlib.import_module(f"fuzz.{path.parent.name}")
    harness.TestOneInput(path.read_bytes())


def test_rewrite_finds_the_port_as_parse_does() -> None:
    """fuzz sdp: with a tab (or any white space but SP) after the media type, ``rewrite`` put
    the relay's port in place of the transport and left the endpoint's port: media went to
    the relay's address on the endpoint's port."""
    sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio\t4000 RTP/AVP 0\r\n"
    out = rewrite(sdp, "203.0.113.7", [{"port": 40000, "rtcp_port": 40001}])
    (m,) = parse(out).media
    assert (m.port, m.proto, m.formats, m.address) == (40000, "RTP/AVP", ["0"], "203.0.113.7")


def test_deeply_nested_control_line_is_refused() -> None:
    """fuzz mediaproxy_control: a line of a few thousand nested arrays made ``json.loads``
    raise RecursionError, which no one caught: it left the relay's event loop and ended the
    relay process, and every call's media with it."""
    for line in (b"[" * 100_000, b'{"command": "update", "streams": ' + b"[" * 50_000 + b"\n"):
        reply = handle_line(None, line)
        assert reply["ok"] is False and "nested" in reply["error"]


def test_credentials_parse_in_linear_time() -> None:
    """fuzz digest (mutation engine): a value the auth-param grammar rejects took time
    quadratic in its length (the regex searched from every later position before the
    check that matches are adjacent): 32 kB of one token, a UDP datagram's worth, took
    seconds of the proxy's CPU per request."""
    for value in ("Digest " + "a" * 60_000, 'Digest username="a", ' + "x" * 60_000,
                  "Digest " + "a=b " * 15_000, 'Digest realm="' + "\\a" * 20_000):
        with time_bound(0.5):
            assert parse_credentials(value) is None
    assert parse_auth_params('Digest a=b, c="d\\"e", f=g,') == ("Digest", {"a": "b", "c": 'd"e', "f": "g"})


def _with_options(rdata: bytes) -> bytes:
    """An ENUM NAPTR query whose OPT record carries ``rdata`` as its options."""
    wire = dns.message.make_query("7.6.5.4.3.2.1.0.2.1.3.e164.arpa", "NAPTR", use_edns=0).to_wire()
    assert wire.endswith(b"\x00\x00")  # the OPT record's RDLENGTH, 0
    return wire[:-2] + len(rdata).to_bytes(2, "big") + rdata


@pytest.mark.parametrize("rdata,rcode", [
    (b"\x00\x01\x01\x35", dns.rcode.FORMERR),  # an option longer than the record
    (b"\x00\x0a\x00\x05abcde", dns.rcode.FORMERR),  # a COOKIE of no valid length
    (b"\x00\x08\x00\x01\x00", dns.rcode.FORMERR),  # a truncated client subnet (ECS)
    (b"\x00\x0a\x00\x0812345678", dns.rcode.NOERROR),  # a client COOKIE
    (b"\xfd\xe9\x00\x02ab", dns.rcode.NOERROR),  # an option nobody looks inside
])
def test_fast_path_refuses_what_the_general_path_refuses(rdata: bytes, rcode: int) -> None:
    """fuzz enumdns_query: the fast path answered a query whose EDNS options were malformed,
    where the general path (dnspython) answers FORMERR."""
    wire = _with_options(rdata)
    fast, slow = respond(wire, FAST), respond(wire, SLOW)
    assert dns.message.from_wire(fast.wire).rcode() == dns.message.from_wire(slow.wire).rcode() == rcode


NAME_FLOOD = r"""
import os, sys
from ngnpro.soap.envelope import parse_request
from ngnpro.soap.faults import NGNProError
env = ('<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body>'
       '<m xmlns="urn:x"><{0}/></m></SOAP-ENV:Body></SOAP-ENV:Envelope>')
def flood(count, size):
    for i in range(count):
        try:
            parse_request(env.format("n" + os.urandom(size).hex()).encode())
        except NGNProError:
            return i
flood(150_000, 1000)  # 2 kB names: refused after about 87,000 (some 170 MB of names) ...
flood(20_000, 5)  # ... and short ones a thousand names later
try:
    parse_request(env.format("a-name-not-seen-before").encode())
except NGNProError as exc:
    sys.exit(f"a well-formed request is refused: {exc.message}")
"""


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="known, not fixed in the decoder: lxml interns every element and attribute name "
                   "in one dictionary per thread that never shrinks; the server replaces a worker before "
                   "(tests/ngnpro/test_recycle.py, docs/reliability.md)")
def test_element_names_do_not_exhaust_the_parser() -> None:
    """fuzz ngnpro_soap (mutation engine, after ~500,000 inputs): requests with new element
    names grow libxml2's name dictionary for good; once it is full, any request with a name
    not seen before fails -- "malformed XML", or MemoryError in the Apache Map decoding (then
    fault 9000). An unauthenticated client gets there with a few hundred 1 MB requests."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", NAME_FLOOD], cwd=root, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-500:]
