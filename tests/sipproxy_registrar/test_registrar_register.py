"""Registrar decisions (RFC 3261 10.3) with a real database: auth, policy, bindings."""

from __future__ import annotations

import email.utils
import itertools
import logging

import pytest

from sipproxy.directory.store import Directory
from sipproxy.registrar.location import LocationStore
from sipproxy.registrar.registrar import Registrar
from sipproxy.sip.digest import DigestAuth

from .support import DOMAIN, Clock, answer, expires_of, parse, provision, register

SRC = "udp:198.51.100.7:40000"
SOCK = "udp:127.0.0.1:5060"



@pytest.fixture
def env(db_url: str):
    engine, factory = provision(db_url, {"alice": "pw-alice", "bob": "pw-bob", "eve": "pw-eve"},
                                blocked=("eve",))
    clock = Clock()
    directory = Directory(factory)
    location = LocationStore(factory, clock=clock)
    auth = DigestAuth(b"test-secret", nonce_lifetime=300, clock=clock)
    reg = Registrar(directory, location, auth, min_expires=60, max_expires=3600, default_expires=1800,
                    clock=clock)
    yield reg, location, clock
    engine.dispose()


_calls = itertools.count()


def authed(reg: Registrar, user: str, password: str, *, algorithm: str = "MD5", auth_user: str | None = None,
           **kw):
    """REGISTER -> 401 -> REGISTER with credentials; returns the final response."""
    call_id = kw.pop("call_id", f"call-{next(_calls)}")
    first = reg.handle(parse(register(user, call_id=call_id, **kw)), received=SRC, socket=SOCK)
    assert first.status == 401, first
    creds = answer(first, auth_user or user, password, algorithm=algorithm)
    return reg.handle(parse(register(user, call_id=call_id, auth=creds, **kw)), received=SRC, socket=SOCK)


def test_challenge_then_register_md5(env, caplog) -> None:  # noqa: ANN001
    reg, location, clock = env
    first = reg.handle(parse(register("alice")), received=SRC, socket=SOCK)
    assert first.status == 401 and first.headers.get("to").count("tag=") == 1
    challenges = first.headers.raw("www-authenticate")
    assert len(challenges) == 2 and "SHA-256" in challenges[0] and "MD5" in challenges[1]
    assert f'realm="{DOMAIN}"' in challenges[0] and 'qop="auth"' in challenges[0]
    with caplog.at_level(logging.INFO, logger="sipproxy.registrar"):
        ok = reg.handle(parse(register("alice", auth=answer(first, "alice", "pw-alice"))), received=SRC,
                        socket=SOCK)
    assert ok.status == 200
    assert expires_of(ok) == {"sip:alice@192.0.2.10:5060": 1800}  # default_expires
    assert email.utils.parsedate_to_datetime(ok.headers.get("date")).timestamp() == clock.t
    [b] = location.lookup("alice", DOMAIN)
    assert (b.received, b.socket, b.behind_nat) == (SRC, SOCK, True)  # contact != source: NAT
    assert any("REGISTER alice@example.com" in r.message and "200" in r.message for r in caplog.records)


def test_sha256_and_ha1b_usernames(env) -> None:  # noqa: ANN001
    reg, location, _ = env
    assert authed(reg, "alice", "pw-alice", algorithm="SHA-256").status == 200
    assert authed(reg, "bob", "pw-bob", auth_user=f"bob@{DOMAIN}").status == 200
    assert {b.contact for b in location.lookup("bob", DOMAIN)} == {"sip:bob@192.0.2.10:5060"}


def test_wrong_password_rechallenged_and_nothing_saved(env) -> None:  # noqa: ANN001
    reg, location, _ = env
    res = authed(reg, "alice", "not-the-password")
    assert res.status == 401 and "stale" not in res.headers.get("www-authenticate")
    assert location.lookup("alice", DOMAIN) == []
    unknown = reg.handle(parse(register("mallory")), received=SRC)
    assert unknown.status == 401  # same answer as for a known user: no user enumeration


def test_credentials_must_match_to_user(env) -> None:  # noqa: ANN001
    reg, location, _ = env
    first = reg.handle(parse(register("alice", to_user="bob")), received=SRC)
    res = reg.handle(parse(register("alice", to_user="bob", auth=answer(first, "alice", "pw-alice"))),
                     received=SRC)
    assert res.status == 403 and "Match" in res.reason
    assert location.lookup("bob", DOMAIN) == []


def test_blocked_account_and_foreign_domain(env) -> None:  # noqa: ANN001
    reg, location, _ = env
    assert authed(reg, "eve", "pw-eve").status == 403
    assert location.lookup("eve", DOMAIN) == []
    foreign = reg.handle(parse(register("alice", domain="elsewhere.org")), received=SRC)
    assert foreign.status == 403 and not foreign.headers.get("www-authenticate")


def test_stale_nonce_and_replay(env) -> None:  # noqa: ANN001
    reg, _, clock = env
    first = reg.handle(parse(register("alice", call_id="s1", cseq=1)), received=SRC)
    creds = answer(first, "alice", "pw-alice")
    clock.t += 301
    stale = reg.handle(parse(register("alice", call_id="s1", cseq=2, auth=creds)), received=SRC)
    assert stale.status == 401 and "stale=true" in stale.headers.get("www-authenticate")
    creds = answer(stale, "alice", "pw-alice")
    assert reg.handle(parse(register("alice", call_id="s1", cseq=3, auth=creds)), received=SRC).status == 200
    replay = reg.handle(parse(register("alice", call_id="s1", cseq=4, auth=creds)), received=SRC)
    assert replay.status == 401 and "stale=true" in replay.headers.get("www-authenticate")


def test_expires_rules(env) -> None:  # noqa: ANN001
    reg, location, _ = env
    brief = authed(reg, "alice", "pw-alice", expires=30)
    assert brief.status == 423 and brief.headers.get("min-expires") == "60"
    assert location.lookup("alice", DOMAIN) == []
    res = authed(reg, "alice", "pw-alice", expires=120,
                 contacts=["<sip:alice@192.0.2.1>;expires=99999", "<sip:alice@192.0.2.2>", "<sip:alice@192.0.2.3>;q=0.2"])
    assert res.status == 200
    assert expires_of(res) == {"sip:alice@192.0.2.1": 3600, "sip:alice@192.0.2.2": 120, "sip:alice@192.0.2.3": 60 * 2}
    assert [b.contact for b in location.lookup("alice", DOMAIN)][-1] == "sip:alice@192.0.2.3"  # lowest q last
    assert any(";q=0.2" in v for v in res.headers.getall("contact"))
    # expires=0 on one contact removes just that one.
    res = authed(reg, "alice", "pw-alice", contacts=["<sip:alice@192.0.2.2>;expires=0"])
    assert set(expires_of(res)) == {"sip:alice@192.0.2.1", "sip:alice@192.0.2.3"}
    bad = authed(reg, "alice", "pw-alice", contacts=["<sip:alice@192.0.2.2>;expires=soon"])
    assert bad.status == 400
    badq = authed(reg, "alice", "pw-alice", contacts=["<sip:alice@192.0.2.2>;q=7"])
    assert badq.status == 400
    assert len(location.lookup("alice", DOMAIN)) == 2  # the bad requests changed nothing


def test_wildcard_and_query(env) -> None:  # noqa: ANN001
    reg, location, _ = env
    authed(reg, "bob", "pw-bob", contacts=["<sip:bob@192.0.2.1>", "<sip:bob@192.0.2.2>"])
    query = authed(reg, "bob", "pw-bob", contacts=[])
    assert query.status == 200 and len(expires_of(query)) == 2
    assert authed(reg, "bob", "pw-bob", contacts=["*"], expires=60).status == 400
    assert authed(reg, "bob", "pw-bob", contacts=["*", "<sip:bob@192.0.2.1>"], expires=0).status == 400
    assert len(location.lookup("bob", DOMAIN)) == 2
    gone = authed(reg, "bob", "pw-bob", contacts=["*"], expires=0)
    assert gone.status == 200 and gone.headers.getall("contact") == []
    assert location.lookup("bob", DOMAIN) == []


def test_path_stored_and_echoed(env) -> None:  # noqa: ANN001
    reg, location, _ = env
    res = authed(reg, "alice", "pw-alice", extra="Path: <sip:edge1.example;lr>, <sip:edge2.example;lr>\r\nSupported: path")
    assert res.status == 200
    assert res.headers.getall("path") == ["<sip:edge1.example;lr>", "<sip:edge2.example;lr>"]
    assert location.lookup("alice", DOMAIN)[0].path == ("<sip:edge1.example;lr>", "<sip:edge2.example;lr>")
    # Without Supported: path it is still stored (for routing) but not echoed.
    res = authed(reg, "bob", "pw-bob", extra="Path: <sip:edge1.example;lr>")
    assert res.status == 200 and res.headers.getall("path") == []
    assert location.lookup("bob", DOMAIN)[0].path == ("<sip:edge1.example;lr>",)


def test_malformed_credentials_and_headers(env) -> None:  # noqa: ANN001
    reg, location, _ = env
    bad = reg.handle(parse(register("alice", auth=f'Digest username="alice", realm="{DOMAIN}", nonce="x"')),
                     received=SRC)
    assert bad.status == 400
    no_user = reg.handle(parse(register("alice").replace(b"To: <sip:alice@", b"To: <sip:")), received=SRC)
    assert no_user.status == 400
    assert location.lookup("alice", DOMAIN) == []


def test_proxy_authentication_407(env) -> None:  # noqa: ANN001
    from sipproxy.auth.authentication import Authenticator

    reg, _, _ = env
    authn: Authenticator = reg.authenticator
    invite = (
        "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKinv1\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
        "Call-ID: inv-1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@192.0.2.10>\r\n{auth}Content-Length: 0\r\n\r\n"
    )
    first = authn.check(parse(invite.format(auth="").encode()), DOMAIN, proxy=True)
    assert first.account is None and first.response.status == 407
    assert len(first.response.headers.raw("proxy-authenticate")) == 2
    creds = answer(first.response, "alice", "pw-alice", method="INVITE", uri="sip:bob@example.com",
                   header="proxy-authenticate")
    # Credentials in the wrong header (Authorization) do not count for a proxy.
    wrong_header = authn.check(parse(invite.format(auth=f"Authorization: {creds}\r\n").encode()), DOMAIN,
                               proxy=True)
    assert wrong_header.response.status == 407
    ok = authn.check(parse(invite.format(auth=f"Proxy-Authorization: {creds}\r\n").encode()), DOMAIN, proxy=True)
    assert ok.response is None and ok.account.username == "alice"


def test_database_failure_answers_500_and_changes_nothing(env, db_url: str) -> None:  # noqa: ANN001
    from sqlalchemy import text

    from ngnpro.models import open_database

    reg, location, _ = env
    engine, _ = open_database(db_url, migrate=False)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE location RENAME TO location_gone"))
    try:
        res = authed(reg, "alice", "pw-alice")
        assert res.status == 500 and res.headers.get("retry-after") == "5"
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE location_gone RENAME TO location"))
        engine.dispose()
    assert location.lookup("alice", DOMAIN) == []
    assert authed(reg, "alice", "pw-alice").status == 200  # and it recovers


def test_nat_detection_ipv4_ipv6() -> None:
    from sipproxy.registrar.registrar import split_address
    from sipproxy.sip.uri import parse_name_addr

    assert split_address("udp:[2001:db8::1]:5062") == ("udp", "2001:db8::1", 5062)
    assert split_address("TCP:192.0.2.1:5060") == ("tcp", "192.0.2.1", 5060)
    nat = Registrar._behind_nat
    assert not nat(parse_name_addr("<sip:a@[2001:DB8::1]:5062>"), "udp:[2001:db8::1]:5062")
    assert not nat(parse_name_addr("<sip:a@192.0.2.1>"), "udp:192.0.2.1:5060")  # default port
    assert nat(parse_name_addr("<sip:a@10.0.0.5:5060>"), "udp:192.0.2.1:5060")  # private address
    assert nat(parse_name_addr("<sip:a@192.0.2.1:5060>"), "udp:192.0.2.1:40001")  # port rewritten
    assert not nat(parse_name_addr("<sips:a@192.0.2.1>"), "tls:192.0.2.1:5061")
