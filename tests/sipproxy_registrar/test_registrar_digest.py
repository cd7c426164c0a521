"""Digest authentication: RFC test vectors, nonce expiry, replay, wrong password, SHA-256."""

from __future__ import annotations

import pytest

from sipproxy.sip import digest
from sipproxy.sip.digest import DigestAuth, compute_response, ha1, parse_credentials

from .support import Clock

REALM = "example.com"
ALGS = ("SHA-256", "MD5")
PASSWORD = "s3cret"



def test_rfc7616_vectors_md5_and_sha256() -> None:
    # RFC 7616 section 3.9.1.
    nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
    cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    kw = dict(nonce=nonce, method="GET", uri="/dir/index.html", qop="auth", nc="00000001", cnonce=cnonce)
    md5 = ha1("Mufasa", "http-auth@example.org", "Circle of Life", "MD5")
    sha = ha1("Mufasa", "http-auth@example.org", "Circle of Life", "SHA-256")
    assert compute_response("MD5", md5, **kw) == "8ca523f5e9506fed4657c9700eebdbec"
    assert compute_response("SHA-256", sha, **kw) == (
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )


def test_rfc2617_vector() -> None:
    h = ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    got = compute_response(
        "MD5", h, nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", method="GET", uri="/dir/index.html",
        qop="auth", nc="00000001", cnonce="0a4f113b",
    )
    assert got == "6629fae49393a05397450978507c4ef1"


def _challenge_nonce(auth: DigestAuth, **kw) -> tuple[list[tuple[str, str]], str]:
    headers = auth.challenge(REALM, **kw)
    parsed = digest.parse_auth_params(headers[0][1])
    assert parsed is not None
    return headers, parsed[1]["nonce"]


def _authorization(nonce: str, *, user: str = "alice", password: str = PASSWORD, alg: str = "MD5",
                   nc: int = 1, method: str = "REGISTER", uri: str = "sip:example.com",
                   qop: bool = True, realm: str = REALM) -> str:
    h = ha1(user, realm, password, alg)
    ncs = f"{nc:08x}"
    resp = compute_response(alg, h, nonce=nonce, method=method, uri=uri, qop="auth" if qop else "",
                            nc=ncs if qop else "", cnonce="abc" if qop else "")
    value = f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", response="{resp}", algorithm={alg}'
    if qop:
        value += f', qop=auth, nc={ncs}, cnonce="abc"'
    return value


def _lookup(user: str, alg: str) -> str | None:
    if user != "alice":
        return None
    return ha1("alice", REALM, PASSWORD, alg)


def test_challenge_offers_both_algorithms_sha256_first() -> None:
    auth = DigestAuth(b"k")
    www, _ = _challenge_nonce(auth)
    assert [h[0] for h in www] == ["WWW-Authenticate", "WWW-Authenticate"]
    assert "algorithm=SHA-256" in www[0][1] and "algorithm=MD5" in www[1][1]
    assert 'qop="auth"' in www[0][1] and "stale" not in www[0][1]
    proxy = auth.challenge(REALM, proxy=True, stale=True)
    assert proxy[0][0] == "Proxy-Authenticate" and proxy[0][1].endswith("stale=true")


@pytest.mark.parametrize("alg", ["MD5", "SHA-256"])
def test_good_credentials_accepted_once_per_nc(alg: str) -> None:
    auth = DigestAuth(b"k")
    _, nonce = _challenge_nonce(auth)
    value = _authorization(nonce, alg=alg)
    ok = auth.verify([value], method="REGISTER", realm=REALM, lookup=_lookup)
    assert ok.ok and ok.username == "alice" and ok.algorithm == alg
    replay = auth.verify([value], method="REGISTER", realm=REALM, lookup=_lookup)
    assert replay.status == digest.STALE and "replay" in replay.reason
    nxt = auth.verify([_authorization(nonce, alg=alg, nc=2)], method="REGISTER", realm=REALM, lookup=_lookup)
    assert nxt.ok


def test_out_of_order_nc_within_window() -> None:
    auth = DigestAuth(b"k")
    _, nonce = _challenge_nonce(auth)
    v = lambda nc: auth.verify([_authorization(nonce, nc=nc)], method="REGISTER", realm=REALM, lookup=_lookup)  # noqa: E731
    assert v(5).ok and v(3).ok and v(4).ok
    assert v(3).status == digest.STALE and v(5).status == digest.STALE
    assert v(200).ok and v(100).status == digest.STALE  # fell out of the 64-wide window


def test_wrong_password_and_unknown_user() -> None:
    auth = DigestAuth(b"k")
    _, nonce = _challenge_nonce(auth)
    wrong = auth.verify([_authorization(nonce, password="nope")], method="REGISTER", realm=REALM, lookup=_lookup)
    assert wrong.status == digest.WRONG and wrong.username == "alice"
    # A wrong attempt does not consume the nonce-count: the right one still passes.
    assert auth.verify([_authorization(nonce)], method="REGISTER", realm=REALM, lookup=_lookup).ok
    unknown = auth.verify([_authorization(nonce, user="mallory", nc=2)], method="REGISTER", realm=REALM,
                          lookup=_lookup)
    assert unknown.status == digest.WRONG and unknown.username == "mallory"


def test_method_is_covered() -> None:
    auth = DigestAuth(b"k")
    _, nonce = _challenge_nonce(auth)
    value = _authorization(nonce, method="REGISTER")
    assert auth.verify([value], method="INVITE", realm=REALM, lookup=_lookup).status == digest.WRONG


def test_expired_nonce_is_stale_and_forged_nonce_is_wrong() -> None:
    clock = Clock()
    auth = DigestAuth(b"k", nonce_lifetime=300, clock=clock)
    _, nonce = _challenge_nonce(auth)
    clock.t += 301
    stale = auth.verify([_authorization(nonce)], method="REGISTER", realm=REALM, lookup=_lookup)
    assert stale.status == digest.STALE
    other = DigestAuth(b"other-secret", clock=clock)
    _, foreign = _challenge_nonce(other)
    forged = auth.verify([_authorization(foreign)], method="REGISTER", realm=REALM, lookup=_lookup)
    assert forged.status == digest.WRONG
    # Tampering with the timestamp breaks the signature.
    ts, issuer, rnd, mac = nonce.split(".")
    moved = f"{int(clock.t):x}.{issuer}.{rnd}.{mac}"
    assert auth.verify([_authorization(moved)], method="REGISTER", realm=REALM, lookup=_lookup).status == digest.WRONG


def test_nonce_of_another_worker_is_stale_not_replayable() -> None:
    a, b = DigestAuth(b"shared", issuer="1"), DigestAuth(b"shared", issuer="2")
    _, nonce = _challenge_nonce(a)
    value = _authorization(nonce)
    assert a.verify([value], method="REGISTER", realm=REALM, lookup=_lookup).ok
    # The same credentials sent to the other worker: a retry with its nonce, not a replay.
    other = b.verify([value], method="REGISTER", realm=REALM, lookup=_lookup)
    assert other.status == digest.STALE and "worker" in other.reason
    assert DigestAuth(b"shared").issuer == DigestAuth(b"shared").issuer  # one process, one issuer


def test_configured_algorithms() -> None:
    auth = DigestAuth(b"k", algorithms=["md5"])
    only = auth.challenge(REALM)
    assert len(only) == 1 and "algorithm=MD5" in only[0][1]
    assert len(auth.challenge(REALM, algorithms=ALGS)) == 2
    with pytest.raises(ValueError):
        DigestAuth(b"k", algorithms=["SHA-1"])


def test_no_qop_credentials_are_single_use() -> None:
    auth = DigestAuth(b"k")
    _, nonce = _challenge_nonce(auth)
    value = _authorization(nonce, qop=False)
    assert auth.verify([value], method="REGISTER", realm=REALM, lookup=_lookup).ok
    assert auth.verify([value], method="REGISTER", realm=REALM, lookup=_lookup).status == digest.STALE


def test_bounded_memory_never_reopens_replay() -> None:
    clock = Clock()
    auth = DigestAuth(b"k", max_nonces=10, clock=clock)
    first = None
    for _ in range(50):
        _, nonce = _challenge_nonce(auth)
        first = first or (nonce, _authorization(nonce))
        assert auth.verify([_authorization(nonce)], method="REGISTER", realm=REALM, lookup=_lookup).ok
        clock.t += 1
    assert auth.tracked_nonces <= 10
    # The first nonce was evicted: replaying its credentials is refused, not accepted afresh.
    assert auth.verify([first[1]], method="REGISTER", realm=REALM, lookup=_lookup).status == digest.STALE


def test_realm_selection_and_malformed() -> None:
    auth = DigestAuth(b"k")
    _, nonce = _challenge_nonce(auth)
    other_realm = _authorization(nonce, realm="elsewhere.org")
    assert auth.verify([other_realm], method="REGISTER", realm=REALM, lookup=_lookup).status == digest.MISSING
    both = [other_realm, _authorization(nonce)]
    assert auth.verify(both, method="REGISTER", realm=REALM, lookup=_lookup).ok
    assert auth.verify([], method="REGISTER", realm=REALM, lookup=_lookup).status == digest.MISSING
    bad = [
        f'Digest username="alice", realm="{REALM}", nonce="{nonce}"',  # no uri/response
        f'Digest username="alice", realm="{REALM}", nonce="{nonce}", uri="x", response="zz"',
        f'Digest username="alice", realm="{REALM}", nonce="{nonce}", uri="x", response="ab", qop=auth',
        f'Digest username="alice", realm="{REALM}", realm="{REALM}", nonce="n", uri="x", response="ab"',
        f'Digest username="alice", realm="{REALM}", nonce="{nonce}", uri="x", response="ab", algorithm=SHA-1',
    ]
    for value in bad:
        res = auth.verify([value], method="REGISTER", realm=REALM, lookup=_lookup)
        assert res.status == digest.MALFORMED, value
    assert parse_credentials("Basic dXNlcjpwYXNz") is None
    assert digest.parse_auth_params('Digest username="unterminated') is None


def test_quoted_values_unescaped() -> None:
    parsed = digest.parse_auth_params(r'Digest username="a\"b", realm="r, s", nonce=xyz')
    assert parsed == ("Digest", {"username": 'a"b', "realm": "r, s", "nonce": "xyz"})
