"""Site hooks: loading the siteconfig folder, the hook API, and a failing hook (routing/hooks.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sipproxy.routing.hooks import HOOK_POINTS, HookError, Hooks
from sipproxy.routing.pipeline import Router, RouteRequest, Targets
from sipproxy.sip.addressing import Inbound, Listener, Peer
from sipproxy.sip.parser import Response, parse_message
from tests.routing.test_pipeline import Directory, Edge, Location


def _folder(tmp_path: Path, **hooks: str) -> Path:
    for point, body in hooks.items():
        (tmp_path / f"{point}.py").write_text(body)
    return tmp_path


def _call(uri: str = "sip:alice@example.com", source: str = "198.51.100.7") -> RouteRequest:
    req = parse_message((f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {source};branch=z9hG4bKh1\r\n"
                         "From: <sip:gw@carrier.example>;tag=f\r\nTo: <sip:x@example.com>\r\n"
                         "Call-ID: hooks@x\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
                         "Content-Length: 0\r\n\r\n").encode())
    inbound = Inbound(b"", Peer("udp", source, 5060), Listener("udp", "127.0.0.1", 5060))
    return RouteRequest(req, inbound, None, False)


def _router(folder: Path | None) -> Router:
    return Router(Directory(), Location(), Edge(), Hooks(folder), server_domain="example.com")


def test_no_folder_and_an_empty_folder_mean_no_hooks(tmp_path: Path) -> None:
    assert Hooks(None).functions == {} and Hooks(tmp_path / "missing").functions == {}
    assert Hooks(tmp_path).functions == {}


def test_each_point_loads_its_module(tmp_path: Path) -> None:
    folder = _folder(tmp_path, **{p: "def hook(request, api):\n    pass\n" for p in HOOK_POINTS})
    (folder / "notes.py").write_text("raise RuntimeError('not a hook point: never loaded')\n")
    assert set(Hooks(folder).functions) == set(HOOK_POINTS)


@pytest.mark.parametrize("body, why", [
    ("def hook(request, api)\n", "SyntaxError"),
    ("x = 1\n", "defines no hook"),
    ("import no_such_module_here\n", "ModuleNotFoundError"),
])
def test_a_hook_that_does_not_load_stops_the_start(tmp_path: Path, body: str, why: str) -> None:
    folder = _folder(tmp_path, preprocess_uri=body)
    with pytest.raises(HookError, match=why):
        Hooks(folder)


def test_reply_ends_routing(tmp_path: Path) -> None:
    router = _router(_folder(tmp_path, preprocess_uri=(
        "def hook(request, api):\n"
        "    if request.uri.user == 'blocked':\n"
        "        api.reply(403, 'Not Allowed Here')\n")))
    out = router.route(_call("sip:blocked@example.com"))
    assert isinstance(out, Response) and (out.status, out.reason) == (403, "Not Allowed Here")
    assert isinstance(router.route(_call()), Targets)  # the hook let this one go on


def test_a_hooks_refusal_says_why_in_a_warning(tmp_path: Path, caplog) -> None:
    """Rule 7 (outgoing) and 6 (incoming): a refusal carries ``Warning: 399`` like the
    other rules' -- the hook's text, else the hook point that refused -- and is logged as
    an authorization attempt; a provisional or success reply carries none."""
    router = _router(_folder(tmp_path, preprocess_uri=(
        "def hook(request, api):\n"
        "    if request.uri.user == 'premium':\n"
        "        api.reply(403, 'Premium Refused', warning='No \"premium\" numbers here')\n"
        "    elif request.uri.user == 'blocked':\n"
        "        api.reply(603, 'Decline')\n"
        "    elif request.uri.user == 'fine':\n"
        "        api.reply(200, 'OK')\n")))
    with caplog.at_level(logging.WARNING, "sipproxy.siteconfig"):
        told = router.route(_call("sip:premium@example.com"))
    assert isinstance(told, Response) and (told.status, told.reason) == (403, "Premium Refused")
    assert told.headers.getall("warning") == ['399 example.com "No \\"premium\\" numbers here"']
    assert any("authorization: INVITE from gw@carrier.example (source 198.51.100.7) to sip:premium@example.com "
               "refused by the site hook preprocess_uri: 403" in r.getMessage() for r in caplog.records)
    default = router.route(_call("sip:blocked@example.com"))
    assert isinstance(default, Response) and default.status == 603
    assert default.headers.getall("warning") == ['399 example.com "Refused by the site hook preprocess_uri"']
    ok = router.route(_call("sip:fine@example.com"))
    assert isinstance(ok, Response) and ok.status == 200 and ok.headers.getall("warning") == []


def test_the_guides_incoming_pstn_rewrite_reaches_the_local_user(tmp_path: Path) -> None:
    """A carrier sends +-less numbers to our address; the hook puts the request into the
    server domain and strips the carrier's prefix -- the local user step then finds alice."""
    router = _router(_folder(tmp_path, preprocess_uri=(
        "def hook(request, api):\n"
        "    if api.source_ip == '201.176.11.13':\n"
        "        api.log('call from carrier 1')\n"
        "        api.set_domain(api.server_domain)\n"
        "        api.strip(3)\n"
        "        api.set_billing_party(api.source_ip)\n")))
    call = _call("sip:999alice@127.0.0.1", source="201.176.11.13")
    out = router.route(call)
    assert isinstance(out, Targets) and out.callee == "alice@example.com"
    assert str(call.request.uri) == "sip:alice@example.com" and call.billing_party == "201.176.11.13"
    other = _call("sip:999alice@127.0.0.1", source="198.51.100.7")  # not the carrier
    assert isinstance(router.route(other), Response)  # 999alice is nobody


def test_send_out_forwards_to_the_request_uri(tmp_path: Path) -> None:
    router = _router(_folder(tmp_path, handle_outgoing_peers=(
        "def hook(request, api):\n"
        "    api.prefix('+')\n"
        "    api.send_out()\n")))
    out = router.route(_call("sip:pbx@pbx.example.net:5070"))
    assert isinstance(out, Targets) and [t.dest for t in out.targets] == [Peer("udp", "pbx.example.net", 5070)]


def test_a_hook_that_raises_is_logged_and_routing_goes_on_as_without_it(tmp_path: Path, caplog) -> None:
    router = _router(_folder(tmp_path, preprocess_uri=(
        "def hook(request, api):\n"
        "    api.set_uri('sip:nobody@example.com')\n"
        "    api.reply(500, 'half done')\n"
        "    raise ValueError('operator typo')\n")))
    call = _call()
    with caplog.at_level(logging.ERROR, "sipproxy.routing"):
        out = router.route(call)
    assert isinstance(out, Targets) and out.callee == "alice@example.com"  # its URI change undone
    assert str(call.request.uri) == "sip:alice@example.com"
    assert any("site hook preprocess_uri failed" in r.getMessage() for r in caplog.records)


def test_the_proxy_refuses_to_start_with_a_broken_hook_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.helpers import ROOT

    (tmp_path / "site").mkdir()
    folder = _folder(tmp_path / "site", preprocess_request="def hook(request, api)\n")
    config = tmp_path / "msp.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "db.sqlite"}"\n'
                      f'[sipproxy]\nsiteconfig = "{folder}"\n')
    done = subprocess.run([sys.executable, "-m", "sipproxy", "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sipproxy: configuration error: ")
    assert "preprocess_request.py" in lines[0] and "SyntaxError" in lines[0]
