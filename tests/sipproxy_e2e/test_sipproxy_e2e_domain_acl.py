"""End to end: a SIP domain's ACL (fraud control, issue 15) set through SipPort reaches a
running ``python -m sipproxy`` and refuses calls to the domain's subscribers from elsewhere.

ngnpro and the proxy share one SQLite database; PHP's SoapClient provisions the domain and
bob, bob's phone (sipp) registers, then ``updateDomain`` gives the domain the ACL
127.0.0.2/32.  One second later (the platform's promise for a provisioning change), a
caller of another domain at 127.0.0.1 gets 403 Source Address Not Allowed with its
``Warning: 399``, and the same call from 127.0.0.2 reaches bob and is answered.  An empty
list clears the ACL: after another second the caller at 127.0.0.1 gets through too.

SQLite only: nothing here depends on the database backend (tests/auth/test_authz_store.py
reads the ACL on every backend).
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.ngnpro.conftest import start_ngnpro
from tests.ngnpro.harness import php_call

from .sipp_support import ProxyProcess, Sipp, auth_row

DOMAIN = "example.com"
ELSEWHERE = "elsewhere.example"  # callers of another domain are not challenged
INSIDE, OUTSIDE = "127.0.0.2", "127.0.0.1"
#: a provisioning change reaches the proxy within 1 s (DESIGN.md "Data"); no retries after it
PROPAGATION = 1.0
WARNING = f'Warning: 399 {DOMAIN} "The source address may not call this account"'


def _set_acl(url: str, acl: list[dict]) -> float:
    """``updateDomain`` with ``acl`` (nothing else); when it returned."""
    php_call(url, "Sip", "updateDomain", {"domain": {"domain": DOMAIN, "acl": acl}})
    return time.monotonic()


def _after(stamp: float) -> None:
    time.sleep(max(0.0, stamp + PROPAGATION - time.monotonic()))


def _ok(*sipps: Sipp, proxy: ProxyProcess) -> None:
    try:
        for sipp in sipps:
            rc = sipp.wait()
            assert rc == 0, f"sipp {sipp.name} exited {rc}\n{sipp.report()}\n--- proxy\n{proxy.output()[-6000:]}"
    finally:
        for sipp in sipps:
            sipp.kill()


def _answered(tmp: Path, proxy: ProxyProcess, name: str, ip: str, bob_port: int) -> None:
    """A call from ``ip`` to bob that bob's phone answers (200, then BYE 200)."""
    phone = Sipp(tmp, f"bob-{name}", "e2e_uas.xml", proxy.port, ip=OUTSIDE, port=bob_port, server=True,
                 timeout=20)
    caller = Sipp(tmp, name, "flow_uac_trusted.xml", proxy.port, ip=ip,
                  rows=[f"pal;{ELSEWHERE};bob;{DOMAIN};X-Test: domain-acl"])
    _ok(caller, phone, proxy=proxy)
    assert caller.finals() == {("1 INVITE", 200), ("2 BYE", 200)}, caller.report()
    assert "Warning:" not in (tmp / f"{name}.msg").read_text(errors="replace")


def test_a_domain_acl_set_through_soap_refuses_outside_sources(tmp_path, sqlite_url):
    (tmp_path / "ngnpro").mkdir()
    ngnpro = start_ngnpro(tmp_path / "ngnpro", sqlite_url)
    proxy = None
    try:
        url = ngnpro.url
        php_call(url, "Sip", "addDomain", {"domain": {"domain": DOMAIN}})
        php_call(url, "Sip", "addAccount", {"account": {"id": {"username": "bob", "domain": DOMAIN},
                                                        "password": "pw-b"}})
        proxy = ProxyProcess(tmp_path, sqlite_url, server_domain=DOMAIN)
        reg = Sipp(tmp_path, "reg-bob", "e2e_register.xml", proxy.port, rows=[auth_row("bob", "pw-b")])
        _ok(reg, proxy=proxy)

        _after(_set_acl(url, [{"ip": INSIDE, "mask": 32, "tag": "sbc"}]))
        refused = Sipp(tmp_path, "outside", "flow_uac_refused.xml", proxy.port, ip=OUTSIDE,
                       rows=[f"pal;{ELSEWHERE};bob;{DOMAIN};X-Test: domain-acl"])
        _ok(refused, proxy=proxy)
        assert refused.finals() == {("1 INVITE", 403)}, refused.report()
        trace = (tmp_path / "outside.msg").read_text(errors="replace")
        assert "SIP/2.0 403 Source Address Not Allowed" in trace and WARNING in trace, trace
        assert (f"authorization: INVITE from sip:pal@{ELSEWHERE} (source {OUTSIDE}) to sip:bob@{DOMAIN}"
                in proxy.output())
        _answered(tmp_path, proxy, "inside", INSIDE, reg.port)

        _after(_set_acl(url, []))
        _answered(tmp_path, proxy, "cleared", OUTSIDE, reg.port)
    finally:
        if proxy is not None:
            proxy.stop()
        ngnpro.service.stop()
        ngnpro.close()
