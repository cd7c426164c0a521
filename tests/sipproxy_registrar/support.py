"""Shared set-up for the registrar tests: a provisioned database and REGISTER builders."""

from __future__ import annotations

import itertools
import re

from ngnpro.models import SipAccount, SipAccountGroup, SipDomain, open_database, record_change
from ngnpro.models.changes import TOPIC_SIP_ACCOUNT
from sipproxy.sip.digest import compute_response, ha1, parse_auth_params
from sipproxy.sip.parser import Response, parse_message

DOMAIN = "example.com"
_seq = itertools.count(1)


def provision(db_url: str, users: dict[str, str], *, domain: str = DOMAIN, blocked: tuple[str, ...] = ()):
    """Create ``domain`` and accounts (HA1 only); returns (engine, session factory)."""
    engine, factory = open_database(db_url)
    add_accounts(factory, users, domain=domain, blocked=blocked)
    return engine, factory


def add_accounts(factory, users: dict[str, str], *, domain: str = DOMAIN,  # noqa: ANN001
                 blocked: tuple[str, ...] = ()) -> None:
    """Create ``domain`` (if new) and its accounts (HA1 only) through ``factory``."""
    with factory() as s, s.begin():
        if s.query(SipDomain).filter_by(domain=domain).first() is None:
            s.add(SipDomain(domain=domain))
            s.flush()
        for user, pw in users.items():
            acc = SipAccount(username=user, domain=domain, ha1=ha1(user, domain, pw),
                             ha1b=ha1(f"{user}@{domain}", domain, pw),
                             ha1_sha256=ha1(user, domain, pw, "SHA-256"))
            s.add(acc)
            s.flush()
            if user in blocked:
                s.add(SipAccountGroup(account_id=acc.id, name="blocked"))
            record_change(s, TOPIC_SIP_ACCOUNT, f"{user}@{domain}")


def register(user: str, *, contacts: list[str] | None = None, expires: int | None = None,
             call_id: str = "cid-1", cseq: int | None = None, to_user: str | None = None,
             domain: str = DOMAIN, auth: str = "", extra: str = "") -> bytes:
    """A REGISTER as bytes; ``contacts`` are full header values."""
    contacts = [f"<sip:{user}@192.0.2.10:5060>"] if contacts is None else contacts
    lines = [
        f"REGISTER sip:{domain} SIP/2.0",
        f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{next(_seq)}",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{domain}>;tag=f{next(_seq)}",
        f"To: <sip:{to_user or user}@{domain}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq if cseq is not None else next(_seq)} REGISTER",
    ]
    lines += [f"Contact: {c}" for c in contacts]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if auth:
        lines.append(f"Authorization: {auth}")
    if extra:
        lines.append(extra)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(challenge: Response, user: str, password: str, *, algorithm: str = "MD5",
           method: str = "REGISTER", uri: str = f"sip:{DOMAIN}", nc: int = 1, header: str = "www-authenticate",
           auth_user: str | None = None) -> str:
    """Credentials answering the challenge of ``algorithm`` in a 401/407."""
    for value in challenge.headers.raw(header):
        scheme_params = parse_auth_params(value)
        assert scheme_params is not None
        params = scheme_params[1]
        if params.get("algorithm", "MD5").upper() == algorithm:
            break
    else:
        raise AssertionError(f"no {algorithm} challenge in {challenge}")
    realm, nonce = params["realm"], params["nonce"]
    name = auth_user or user
    h = ha1(name, realm, password, algorithm)
    ncs = f"{nc:08x}"
    resp = compute_response(algorithm, h, nonce=nonce, method=method, uri=uri, qop="auth", nc=ncs, cnonce="c0ffee")
    return (f'Digest username="{name}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{resp}", algorithm={algorithm}, qop=auth, nc={ncs}, cnonce="c0ffee"')


def expires_of(response: Response) -> dict[str, int]:
    """Contact URI -> expires listed in a 200 OK."""
    out = {}
    for value in response.headers.getall("contact"):
        m = re.match(r"<([^>]*)>.*;expires=(\d+)", value)
        assert m, value
        out[m.group(1)] = int(m.group(2))
    return out


def parse(data: bytes):
    return parse_message(data)


class Clock:
    """A settable clock for the stores and the registrar (epoch seconds)."""

    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t
