"""The two copies of the digest code (sipproxy's compiled message layer, and ngnpro.models for
XCAP and MSRP) must not drift apart: a fix to one is a fix to both."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _body(path: Path) -> str:
    tree = ast.parse(path.read_text())
    body = tree.body[1:] if isinstance(tree.body[0], ast.Expr) else tree.body
    return "\n".join(ast.dump(node) for node in body)


def test_digest_copies_are_the_same_code() -> None:
    assert _body(ROOT / "sipproxy/sip/digest.py") == _body(ROOT / "ngnpro/models/digest.py")


def test_shared_copy_checks_credentials() -> None:
    from ngnpro.models import digest

    auth = digest.DigestAuth(b"k" * 32)
    nonce = auth.challenge("example.com", algorithms=["SHA-256"])[0][1].split('nonce="')[1].split('"')[0]
    stored = digest.ha1("alice", "example.com", "secret", "SHA-256")
    response = digest.compute_response(
        "SHA-256", stored, nonce=nonce, method="GET", uri="/xcap-root/", qop="auth", nc="00000001", cnonce="c"
    )
    header = (f'Digest username="alice", realm="example.com", nonce="{nonce}", uri="/xcap-root/", '
              f'response="{response}", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="c"')
    lookup = {("alice", "SHA-256"): stored}.get
    ok = auth.verify([header], method="GET", realm="example.com", lookup=lambda u, a: lookup((u, a)))
    assert ok.ok and ok.username == "alice"
    again = auth.verify([header], method="GET", realm="example.com", lookup=lambda u, a: lookup((u, a)))
    assert again.status == digest.STALE  # the same nonce-count is a replay
    wrong = auth.verify([header.replace(response, "0" * 64)], method="GET", realm="example.com",
                        lookup=lambda u, a: lookup((u, a)))
    assert wrong.status == digest.WRONG
