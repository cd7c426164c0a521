"""Methods whose issue has not come yet answer fault 9999 (and still check credentials)."""

from __future__ import annotations

import pytest

from ngnpro.unimplemented import SERVICES
from tests.ngnpro.harness import SoapFaultError, call, envelope, fault_code, raw_call

METHODS = sorted(
    (svc.__port_namespace__, name)
    for svc in SERVICES
    for name in svc.public_methods
)


def test_the_list_is_what_the_issue_names() -> None:
    names = {(ns.rpartition(":")[2], m) for ns, m in METHODS}
    assert {m for p, m in names if p == "Sip"} == {"getSipTrace", "getMediaTrace", "getMediaSummary",
                                                   "getMediaSessions"}
    assert {p for p, _ in names} == {"Sip", "Voicemail", "Network"}  # PresencePort: presence_port.py
    assert len(METHODS) == 4 + 5 + 2


def test_each_answers_9999(ngnpro_server) -> None:
    for ns, method in METHODS:
        with pytest.raises(SoapFaultError) as exc:
            call(ngnpro_server.url, ns, method, {})
        assert exc.value.code == 9999, (ns, method)
        assert "not implemented" in exc.value.message


@pytest.mark.parametrize("port,method", [("Voicemail", "getAccount"), ("Network", "getStatus")])
def test_credentials_checked_first(ngnpro_server, port: str, method: str) -> None:
    status, root = raw_call(ngnpro_server.url, envelope(port, method, "", auth={"username": "x", "password": "y",
                                                                                 "admin": True}))
    assert status == 500 and fault_code(root) == 9001
