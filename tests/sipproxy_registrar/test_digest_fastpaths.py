"""The digest module's shortcuts give exactly what the general code gives.

Why: ``parse_auth_params`` reads the usual credentials layout without its regex, nonces are
signed with a keyed HMAC object copied per nonce and base64url-encoded with binascii, and responses are
hashed without ``H``; each must agree with the reference on every input, or
authentication would change.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random

from sipproxy.sip import digest
from sipproxy.sip.digest import DigestAuth, H, _plain_params, _regex_params, compute_response


def test_plain_params_agree_with_the_grammar_on_random_input() -> None:
    rng = random.Random(4475)
    names = ["username", "realm", "Nonce", "nc", "a-b", "x", "", "n c", "é", "uri "]
    values = ["", "x", "MD5", "SHA-256", "00000001", '"v"', '"v, w"', '""', '"', '"a=b"', "a=b", " x", "x ",
              '"tab\there"', '"new\nline"', "é", "/", '"q" ', 'x"y', "a,b", '"unclosed', "a\tb"]
    seps = [", ", ",", " , ", ",  ", ", ,", ";"]
    accepted = 0
    for _ in range(30_000):
        items = [f"{rng.choice(names)}{rng.choice(['=', '=', '=', ' =', ''])}{rng.choice(values)}"
                 for _ in range(rng.randint(1, 6))]
        rest = items[0]
        for item in items[1:]:
            rest += (", " if rng.random() < 0.8 else rng.choice(seps)) + item
        rest = rest.strip()
        if not rest:
            continue
        plain = _plain_params(rest)
        if plain is not None:
            accepted += 1
            regex = _regex_params(rest)
            assert plain == regex, rest
            assert list(plain) == list(regex or {}), rest  # same order
    assert accepted > 500  # the comparison ran on many accepted inputs


def test_plain_params_on_real_credentials() -> None:
    value = ('username="alice", realm="example.com", nonce="67a.1f.AbC-_d.xyz", uri="sip:example.com;transport=tcp", '
             'response="0123456789abcdef0123456789abcdef", algorithm=SHA-256, qop=auth, nc=00000001, '
             'cnonce="a, b", opaque=""')
    assert _plain_params(value) is None  # ", " inside a quoted value: the regex reads it
    assert digest.parse_auth_params("Digest " + value) == ("Digest", _regex_params(value))
    usual = value.replace('"a, b"', '"ab"')
    assert _plain_params(usual) == _regex_params(usual)
    assert _plain_params(usual)["uri"] == "sip:example.com;transport=tcp"
    assert _plain_params('a=1, A=2') is None and _regex_params('a=1, A=2') is None  # repeated name
    assert digest.parse_auth_params('Digest realm="a\\"b", nonce=x') == ("Digest", {"realm": 'a"b', "nonce": "x"})


def test_nonce_signature_is_hmac_sha256() -> None:
    for secret in (b"", b"k", b"s" * 32, bytes(range(64)), bytes(range(200)), bytearray(b"ba")):
        auth = DigestAuth(secret)
        for body in ("", "5f3a.1c2.AAAAAAAAAAAA", "x" * 90):
            mac = hmac.digest(bytes(secret), body.encode("ascii"), "sha256")[:18]
            assert auth._sign(body) == base64.urlsafe_b64encode(mac).decode("ascii")
    auth = DigestAuth(b"old")
    nonce = auth.make_nonce()
    auth.secret = b"new"  # a replaced secret signs with the new key at once
    assert auth._nonce_time(nonce) is None
    assert auth._sign("b") == base64.urlsafe_b64encode(hmac.digest(b"new", b"b", "sha256")[:18]).decode()


def test_a_non_ascii_nonce_is_refused_not_raised() -> None:
    auth = DigestAuth(b"k")
    value = ('Digest username="u", realm="r", nonce="5f3a.1c2.\u00e9\u00e9.x", uri="sip:r", '
             'response="0123456789abcdef0123456789abcdef", qop=auth, nc=00000001, cnonce="c"')
    result = auth.verify([value], method="REGISTER", realm="r", lookup=lambda u, a: "0" * 32)
    assert (result.status, result.reason) == (digest.WRONG, "nonce not ours")


def test_b64_is_urlsafe_b64encode() -> None:
    rng = random.Random(1)
    for n in range(40):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert digest._b64(data) == base64.urlsafe_b64encode(data).decode("ascii")


def test_compute_response_is_the_rfc_formula() -> None:
    for alg in ("MD5", "md5-sess", "SHA-256", "SHA-256-SESS"):
        a1 = hashlib.md5(b"u:r:p").hexdigest()
        if alg.upper().endswith("-SESS"):
            a1 = H(alg, f"{a1}:n:c")
        ha2 = H(alg, "REGISTER:sip:r")
        assert compute_response(alg, hashlib.md5(b"u:r:p").hexdigest(), nonce="n", method="REGISTER",
                                uri="sip:r", qop="auth", nc="00000001", cnonce="c") == \
            H(alg, f"{a1}:n:00000001:c:auth:{ha2}")
        assert compute_response(alg, hashlib.md5(b"u:r:p").hexdigest(), nonce="n", method="REGISTER",
                                uri="sip:r", cnonce="c") == H(alg, f"{a1}:n:{ha2}")
