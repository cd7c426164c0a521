"""Every RFC 4475 torture message gets what tests/data/rfc4475/README.md says it must."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipproxy.proxy.validation import proxy_validate
from sipproxy.sip.parser import (
    ParseError,
    Request,
    Response,
    make_response,
    parse_message,
)
from sipproxy.sip.uri import URI

DATA = Path(__file__).resolve().parent.parent / "data" / "rfc4475"

VALID_REQUESTS = [
    "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq", "semiuri",
    "transports", "mpart01", "badbranch", "unkscm", "novelsc", "unksm2", "bext01", "invut",
    "regaut01", "cparam01", "cparam02", "regescrt", "sdp01", "inv2543", "zeromf",
    # RFC 4475 allows being liberal with these; we are
    "trws", "baddate", "badaspec", "baddn", "regbadct",
]
VALID_RESPONSES = ["unreason", "noreason", "bcast"]
BAD_REQUESTS = {
    "badinv01": 400, "clerr": 400, "ncl": 400, "scalar02": 400, "quotbal": 400,
    "ltgtruri": 400, "lwsruri": 400, "lwsstart": 400, "escruri": 400, "mismatch01": 400,
    "mismatch02": 400, "insuf": 400, "multi01": 400, "mcl01": 400, "badvers": 505,
}
DROPPED = ["scalarlg", "bigcode"]


def load(name: str) -> bytes:
    return (DATA / f"{name}.dat").read_bytes()


def test_every_readme_case_is_covered() -> None:
    names = {p.stem for p in DATA.glob("*.dat")} - {"test"}
    covered = set(VALID_REQUESTS) | set(VALID_RESPONSES) | set(BAD_REQUESTS) | set(DROPPED)
    assert names == covered
    assert len(names) == 49


@pytest.mark.parametrize("name", VALID_REQUESTS)
def test_valid_request_parses_and_round_trips(name: str) -> None:
    msg = parse_message(load(name))
    assert isinstance(msg, Request)
    assert msg.vias and msg.call_id and msg.cseq[1] == msg.method
    msg.from_, msg.to  # noqa: B018
    again = parse_message(msg.to_bytes())
    assert isinstance(again, Request)
    assert again.method == msg.method and again.call_id == msg.call_id
    assert again.body == msg.body and again.cseq == msg.cseq
    assert [str(v) for v in again.vias] == [str(v) for v in msg.vias]
    # every one can be answered
    resp = make_response(msg, 200, to_tag="x1")
    assert parse_message(resp.to_bytes()).to.tag in ("x1", msg.to.tag)


@pytest.mark.parametrize("name", VALID_RESPONSES)
def test_valid_response_parses(name: str) -> None:
    msg = parse_message(load(name))
    assert isinstance(msg, Response)
    assert parse_message(msg.to_bytes()).status == msg.status


@pytest.mark.parametrize("name,status", sorted(BAD_REQUESTS.items()))
def test_bad_request_gets_its_status_and_can_be_answered(name: str, status: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(load(name))
    err = info.value
    assert err.status == status, err.reason
    assert isinstance(err.request, Request)
    resp = make_response(err.request, err.status, err.reason)
    data = resp.to_bytes()
    assert data.startswith(b"SIP/2.0 %d " % status)
    if name not in ("insuf", "badinv01", "quotbal", "scalar02"):  # faulty fields copied
        assert parse_message(data).status == status
    assert resp.headers.raw("via") == err.request.headers.raw("via")


@pytest.mark.parametrize("name", DROPPED)
def test_bad_response_is_dropped(name: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(load(name))
    assert info.value.status == 0 and info.value.request is None


def test_wsinv_fields() -> None:
    msg = parse_message(load("wsinv"))
    assert msg.uri.host == "chair-dnrc.example.com" and "unknownparam" in msg.uri.params
    assert msg.to.tag == "1918181833n"
    assert msg.from_.display_name == 'J Rosenberg \\"'
    assert msg.from_.tag == "98asjd8"
    assert msg.max_forwards == 68
    assert msg.cseq == (9, "INVITE")
    assert msg.headers.get("subject") == ""
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    vias = msg.vias
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    (contact,) = msg.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params.get("newparam") == "newvalue" and contact.q == 0.33
    assert "secondparam" in contact.params and contact.params["secondparam"] is None
    (route,) = msg.routes
    assert route.uri.lr and route.uri.params.get("unknownwith") == "value"
    assert len(msg.body) == 150 and msg.content_length == 150


def test_dblreq_first_message_only() -> None:
    msg = parse_message(load("dblreq"))
    assert msg.method == "REGISTER" and msg.body == b""


def test_esc02_method_is_not_register() -> None:
    msg = parse_message(load("esc02"))
    assert msg.method == "RE%47IST%45R"
    assert len(msg.contacts) == 2  # C%6Fntact is another header
    assert msg.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_semiuri_user_with_semicolons() -> None:
    msg = parse_message(load("semiuri"))
    assert msg.uri.user == "user;par=u%40example.net" and msg.uri.host == "example.com"
    assert not msg.uri.params
    assert msg.headers.getall("accept")[-1] == "message/sipfrag"
    assert len(msg.headers.getall("accept")) == 6


def test_intmeth_unusual_characters() -> None:
    msg = parse_message(load("intmeth"))
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert msg.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert msg.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.from_.tag == "_token~1'+`*%!-."
    assert msg.from_.params.get("fromParam''~+*_!.-%").startswith('"')
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"


def test_transports_and_badbranch() -> None:
    msg = parse_message(load("transports"))
    assert [v.transport for v in msg.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert parse_message(load("badbranch")).vias[0].branch == "z9hG4bK"


def test_unknown_schemes() -> None:
    assert parse_message(load("unksm2")).to.uri.scheme == "isbn"
    assert parse_message(load("unksm2")).contacts[0].uri.opaque == "John_Smith"
    assert parse_message(load("novelsc")).uri.scheme == "soap.beep"


def test_regbadct_parameters_belong_to_header() -> None:
    (contact,) = parse_message(load("regbadct")).contacts
    assert contact.uri.headers == [("Route", "%3Csip:sip.example.com%3E")]


def test_cparam_and_regescrt() -> None:
    (c1,) = parse_message(load("cparam01")).contacts
    assert "unknownparam" in c1.params and not c1.uri.params
    (c2,) = parse_message(load("cparam02")).contacts
    assert "unknownparam" in c2.uri.params and not c2.params
    (c3,) = parse_message(load("regescrt")).contacts
    assert str(c3.uri) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"


def test_escnull_and_esc01() -> None:
    msg = parse_message(load("escnull"))
    assert [str(c.uri) for c in msg.contacts] == [
        "sip:%00@host5.example.com", "sip:%00%00@host5.example.com"
    ]
    msg = parse_message(load("esc01"))
    assert msg.uri.user == "sips%3Auser%40example.com"
    assert msg.headers.get("content-type") == "application/sdp"


def test_lwsdisp_badaspec_baddn_liberal() -> None:
    assert parse_message(load("lwsdisp")).from_.display_name == "caller"
    assert parse_message(load("badaspec")).to.uri.host == "example.org"
    assert parse_message(load("baddn")).from_.display_name == "Bell, Alexander"


def test_inv2543_no_max_forwards_no_branch() -> None:
    msg = parse_message(load("inv2543"))
    assert msg.max_forwards is None and msg.vias[0].branch is None
    assert msg.record_routes[0].uri.maddr == "ss1.example.com"


def test_responses_fields() -> None:
    assert parse_message(load("noreason")).reason == ""
    bcast = parse_message(load("bcast"))
    assert bcast.vias[1].host == "255.255.255.255"
    assert parse_message(load("unreason")).reason.endswith("простое")


@pytest.mark.parametrize(
    "name,status", [("unkscm", 416), ("novelsc", 416), ("zeromf", 483), ("bext01", 420)]
)
def test_proxy_validation(name: str, status: int) -> None:
    resp = proxy_validate(parse_message(load(name)))
    assert resp is not None and resp.status == status
    if status == 420:
        assert resp.headers.getall("unsupported") == [
            "noProxiesSupportThis", "norDoAnyProxiesSupportThis"
        ]


def test_proxy_validation_checks_proxy_require_against_supported() -> None:
    msg = parse_message(load("bext01"))
    assert proxy_validate(msg, ["NOPROXIESSUPPORTTHIS", "nordoanyproxiessupportthis"]) is None
    resp = proxy_validate(msg, iter(["noproxiessupportthis"]))
    assert resp is not None and resp.headers.getall("unsupported") == ["norDoAnyProxiesSupportThis"]
    upper = parse_message(load("wsinv").replace(b"sip:vivekg@chair-dnrc.example.com", b"SIP:x@h", 1))
    assert upper.uri.scheme == "SIP" and proxy_validate(upper) is None


@pytest.mark.parametrize("name", ["wsinv", "invut", "sdp01", "inv2543", "esc01"])
def test_proxy_validation_passes(name: str) -> None:
    msg = parse_message(load(name))
    if name == "wsinv":
        assert msg.max_forwards == 68
    assert proxy_validate(msg) is None


def test_garbage_is_dropped() -> None:
    for data in (load("test"), b"", b"\r\n\r\n", b"hello", b"\x00\xff" * 20):
        with pytest.raises(ParseError) as info:
            parse_message(data)
        assert info.value.status == 0


def test_uri_object_round_trip_in_request() -> None:
    req = parse_message(load("wsinv"))
    req.uri = URI("sip", "bob", "192.0.2.9", 5070)
    assert parse_message(req.to_bytes()).uri.port == 5070


def test_element_still_answers_after_every_torture_message() -> None:
    """All 49 messages through one transaction layer, then a valid request still works."""
    from sipproxy.sip.transaction import Deliver, Send, TransactionLayer

    layer = TransactionLayer()
    answered = delivered = 0
    for path in sorted(DATA.glob("*.dat")):
        try:
            msg = parse_message(path.read_bytes())
        except ParseError as exc:
            if exc.request is not None:
                make_response(exc.request, exc.status, exc.reason).to_bytes()
                answered += 1
            continue
        for action in layer.receive(msg, source=path.stem):
            if isinstance(action, Deliver):
                delivered += 1
                if isinstance(action.message, Request) and action.transaction is not None:
                    layer.send_response(action.transaction, make_response(action.message, 200))
    assert answered == len(BAD_REQUESTS) and delivered >= len(VALID_REQUESTS)
    ok = load("wsinv").replace(b"wsinv.ndaksdj", b"after.torture")
    actions = layer.receive(parse_message(ok), source="next")
    assert [type(a) for a in actions] == [Send, Deliver]  # 100 Trying, then to the TU
