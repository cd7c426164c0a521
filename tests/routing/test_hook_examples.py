"""The shipped site hook examples (siteconfig.example/): the routing guide's incoming-PSTN
and PBX-transit hooks, run by the pipeline as handle_incoming_pstn."""

from __future__ import annotations

import shutil
from pathlib import Path

from sipproxy.routing.decision import Targets
from sipproxy.routing.hooks import Hooks
from sipproxy.routing.pipeline import Router
from sipproxy.sip.addressing import Peer
from sipproxy.sip.parser import Response
from tests.helpers import ROOT
from tests.routing.test_pipeline import Data, Directory, Edge, Location, Resolver, _call

EXAMPLES = ROOT / "siteconfig.example"


def _router(tmp_path: Path, example: str, replace: tuple[str, str] | None = None) -> Router:
    folder = tmp_path / "siteconfig"
    folder.mkdir()
    shutil.copy(EXAMPLES / example, folder / "handle_incoming_pstn.py")
    if replace is not None:
        path = folder / "handle_incoming_pstn.py"
        path.write_text(path.read_text().replace(*replace))
    return Router(Directory(), Location(), Edge(), Hooks(folder), server_domain="example.com",
                  data=Data(), resolver=Resolver())


def _status(out) -> int:  # noqa: ANN001
    assert isinstance(out, Response), out
    return out.status


def test_carrier_incoming_routes_by_enum_404_and_403(tmp_path: Path) -> None:
    # the carrier's gateway is one of the LCR's gateways (192.0.2.101 in the test data)
    router = _router(tmp_path, "carrier_incoming.py", ('"201.176.11.13"', '"192.0.2.101"'))
    assert "handle_incoming_pstn" in router.hooks

    def route(uri: str):  # noqa: ANN202
        call = _call(uri, source="192.0.2.101")
        call.trusted, call.gateway = router.trusted_source("192.0.2.101")
        return call, router.route(call)

    call, out = route("sip:31201234567@127.0.0.1")  # the carrier sends to our address
    assert isinstance(out, Targets) and out.callee == "alice@example.com"
    assert call.billing_party == "192.0.2.101"
    assert _status(route("sip:31209999999@127.0.0.1")[1]) == 404  # ENUM does not know it
    assert _status(route("sip:31207654321@127.0.0.1")[1]) == 403  # ENUM: a PBX elsewhere


def test_pbx_transit_enum_first_then_the_pstn_or_out(tmp_path: Path) -> None:
    router = _router(tmp_path, "pbx_transit.py")

    def route(uri: str):  # noqa: ANN202
        call = _call(uri, source="192.0.2.201")  # a trusted peer without the transit flag
        call.trusted, call.gateway = router.trusted_source("192.0.2.201")
        return router.route(call)

    local = route("sip:0031201234567@pbx.customer.example")
    assert isinstance(local, Targets) and local.callee == "alice@example.com"
    elsewhere = route("sip:0207654321@pbx.customer.example")  # ENUM: the other PBX
    assert isinstance(elsewhere, Targets) and elsewhere.callee == "info@pbx.example.net"
    pstn = route("sip:0209999999@pbx.customer.example")  # unknown to ENUM: LCR transit
    assert isinstance(pstn, Targets) and pstn.serial
    assert pstn.targets[0].dest == Peer("udp", "192.0.2.101", 5060)
    out = route("sip:bob@other.example")  # a SIP address elsewhere: sent out
    assert isinstance(out, Targets) and out.callee == "bob@other.example"
    # without the hook, the same peer may not transit
    plain = Router(Directory(), Location(), Edge(), data=Data(), resolver=Resolver())
    call = _call("sip:0209999999@pbx.customer.example", source="192.0.2.201")
    call.trusted, call.gateway = plain.trusted_source("192.0.2.201")
    assert isinstance(plain.route(call), Response)
