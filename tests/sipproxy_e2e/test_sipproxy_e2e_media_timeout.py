"""A party that stops sending media makes the proxy end the call with BYE both ways.

Unit tests of :func:`sipproxy.dialog.control.end_call_requests` (Request-URI, route set per side and
its order, tags, CSeq, Reason) and of :class:`sipproxy.dialog.control.CallControl` with a recording
core; then end to end: two sipp UAs call through ``python -m sipproxy`` and ``python -m
mediaproxy`` (``media_timeout`` 2 s), the caller streams 1 s of RTP (echoed by the callee)
and stops; both must receive the proxy's BYE with the Reason header media_timeout after the
media stopped (not sooner, and no later than the relay's next scan and a little slack), the
dialog row must be gone and the relay's summary must say the call ended on a media timeout.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session as DbSession

from ngnpro.models import Dialog, MediaSession
from sipproxy.dialog.control import (
    MEDIA_TIMEOUT,
    CallControl,
    EndReason,
    end_call_requests,
)
from sipproxy.sip.addressing import Peer
from sipproxy.sip.parser import parse_message
from sipproxy.sip.routeset import apply_route_set
from sipproxy.sip.uri import ParseError
from tests.helpers import free_port, require_tool

ME = "10.0.0.1"


def _mine(uri) -> bool:
    return uri.host == ME


def _dialog(**kw):
    base = dict(call_id="c1@x", from_tag="ftag", to_tag="ttag", caller="alice@example.com",
                callee="bob@example.com", caller_contact="<sip:alice@192.0.2.1:5070;transport=udp>",
                callee_contact="<sip:bob@198.51.100.2:5080>", caller_cseq=2, callee_cseq=0,
                route_set=f"<sip:{ME};lr>", caller_source="udp:192.0.2.1:5070",
                callee_source="udp:198.51.100.2:5080")
    base.update(kw)
    return SimpleNamespace(**base)


def _byes(dialog, **kw):
    out = dict(end_call_requests(dialog, MEDIA_TIMEOUT, _mine, **kw))
    # round trip through the wire format: what the phones will parse (with the Via the
    # sender adds: the parser requires one)
    for req in out.values():
        assert req.headers.get("via") is None
        req.headers.add("Via", f"SIP/2.0/UDP {ME};branch=z9hG4bKtest", top=True)
    return {side: parse_message(req.to_bytes()) for side, req in out.items()}


# -- the BYE builder -----------------------------------------------------------------------

def test_bye_request_uri_is_each_partys_contact_and_no_route_when_we_are_the_only_proxy():
    byes = _byes(_dialog())
    assert str(byes["callee"].uri) == "sip:bob@198.51.100.2:5080"
    assert str(byes["caller"].uri) == "sip:alice@192.0.2.1:5070;transport=udp"
    for bye in byes.values():
        assert bye.method == "BYE" and bye.headers.getall("route") == []
        assert bye.call_id == "c1@x" and bye.max_forwards == 70
        assert bye.headers.get("reason") == 'SIP ;cause=200;text="Media timeout"'


def test_bye_tags_impersonate_the_other_party():
    byes = _byes(_dialog())
    callee_bye, caller_bye = byes["callee"], byes["caller"]
    assert (callee_bye.from_.tag, callee_bye.to.tag) == ("ftag", "ttag")
    assert str(callee_bye.from_.uri) == "sip:alice@example.com" and str(callee_bye.to.uri) == "sip:bob@example.com"
    assert (caller_bye.from_.tag, caller_bye.to.tag) == ("ttag", "ftag")
    assert str(caller_bye.from_.uri) == "sip:bob@example.com" and str(caller_bye.to.uri) == "sip:alice@example.com"


def test_bye_cseq_is_above_what_each_impersonated_party_used():
    byes = _byes(_dialog())
    assert byes["callee"].cseq == (3, "BYE")  # the caller's INVITE had 2
    assert byes["caller"].cseq == (1, "BYE")  # the callee never sent a request
    byes = _byes(_dialog(), caller_cseq=7, callee_cseq=4)  # in-dialog requests seen since
    assert byes["callee"].cseq == (8, "BYE") and byes["caller"].cseq == (5, "BYE")
    byes = _byes(_dialog(caller_cseq=20), caller_cseq=7)
    assert byes["callee"].cseq == (21, "BYE")


def test_route_set_is_split_at_our_record_route_and_ordered_per_side():
    # caller -> P1 -> P2 -> us -> P4 -> P5 -> callee: the 2xx's Record-Route, top first
    rr = (f"<sip:p5.example.net;lr>, <sip:p4.example.net;lr>, <sip:{ME};lr>, "
          "<sip:p2.example.org;lr>, <sip:p1.example.org;lr>")
    byes = _byes(_dialog(route_set=rr))
    assert byes["callee"].headers.getall("route") == ["<sip:p4.example.net;lr>", "<sip:p5.example.net;lr>"]
    assert byes["caller"].headers.getall("route") == ["<sip:p2.example.org;lr>", "<sip:p1.example.org;lr>"]
    assert str(apply_route_set(byes["callee"])) == "sip:p4.example.net;lr"
    assert str(apply_route_set(byes["caller"])) == "sip:p2.example.org;lr"
    # the Request-URI stays the remote target with loose routers
    assert str(byes["callee"].uri) == "sip:bob@198.51.100.2:5080"


def test_double_record_route_of_ours_is_left_out():
    rr = f"<sip:p4.example.net;lr>, <sip:{ME}:5060;transport=tcp;lr>, <sip:{ME}:5060;lr>, <sip:p1.example.org;lr>"
    byes = _byes(_dialog(route_set=rr))
    assert byes["callee"].headers.getall("route") == ["<sip:p4.example.net;lr>"]
    assert byes["caller"].headers.getall("route") == ["<sip:p1.example.org;lr>"]


def test_strict_router_becomes_the_request_uri():
    rr = f"<sip:strict.example.net>, <sip:{ME};lr>"
    bye = _byes(_dialog(route_set=rr))["callee"]
    # built along the route set; sent through the proxy's one route-set rule
    assert str(bye.uri) == "sip:bob@198.51.100.2:5080"
    assert bye.headers.getall("route") == ["<sip:strict.example.net>"]
    assert str(apply_route_set(bye)) == "sip:strict.example.net"
    assert str(bye.uri) == "sip:strict.example.net"
    assert bye.headers.getall("route") == ["<sip:bob@198.51.100.2:5080>"]


def test_reason_text_is_quoted_and_any_reason_can_end_a_call():
    bye = dict(end_call_requests(_dialog(), EndReason(402, 'Credit "exhausted"'), _mine))["callee"]
    assert bye.headers.get("reason") == 'SIP ;cause=402;text="Credit \\"exhausted\\""'


def test_unreadable_contact_raises_parse_error():
    with pytest.raises(ParseError):
        end_call_requests(_dialog(callee_contact=""), MEDIA_TIMEOUT, _mine)


# -- CallControl with a recording core -----------------------------------------------------

class _Edge:
    """The proxy's I/O edge (sipproxy.proxy.interface.Edge), recording what is sent."""

    def __init__(self):
        self.sent = []
        self.connections = set()

    def connected(self, peer):
        return peer in self.connections

    def resolve(self, uri):
        return Peer(uri.transport or "udp", uri.host, uri.port or 5060)

    def listener_for(self, transport, host=None):
        return SimpleNamespace(transport=transport, host=ME, port=5060)

    def via_for(self, lst, branch):
        return f"SIP/2.0/{lst.transport.upper()} {lst.host}:{lst.port};branch={branch};rport"

    def branch_suffix(self):
        return "0.abc"

    def send_request(self, req, dest):
        self.sent.append((req, dest))
        return object()


class _Dialogs:
    def __init__(self, rows):
        self.rows, self.ended_calls = rows, []

    def find(self, call_id):
        return [r for r in self.rows if r.call_id == call_id]

    def ended(self, call_id, a, b="", remove=False):
        assert remove  # the proxy ended the call itself: nobody answers a BYE of the phones'
        self.ended_calls.append((call_id, a, b))


def _proxy(rows):
    media = SimpleNamespace(removed=[])
    media.end = lambda call_id, reason: media.removed.append((call_id, reason))
    return SimpleNamespace(edge=_Edge(), dialogs=_Dialogs(rows), media=media, _is_my_uri=_mine)


def test_call_control_sends_both_byes_deletes_the_dialog_and_releases_media():
    proxy = _proxy([_dialog(), _dialog(call_id="other")])
    calls = CallControl(proxy)
    # a re-INVITE from the callee (CSeq 9) went through the proxy during the call
    reinvite = parse_message(b"INVITE sip:alice@192.0.2.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
                             b"From: <sip:bob@example.com>;tag=ttag\r\nTo: <sip:alice@example.com>;tag=ftag\r\n"
                             b"Call-ID: c1@x\r\nCSeq: 9 INVITE\r\n\r\n")
    calls.note_request(reinvite)
    ev = SimpleNamespace(call_id="c1@x", from_tag="ftag", to_tag="ttag", stream=0, reason="media timeout")
    calls.on_media_timeout(ev)
    sent = {str(dest): req for req, dest in proxy.edge.sent}
    assert set(sent) == {"udp:198.51.100.2:5080", "udp:192.0.2.1:5070"}
    assert sent["udp:192.0.2.1:5070"].cseq == (10, "BYE")
    assert sent["udp:198.51.100.2:5080"].cseq == (3, "BYE")
    for req in sent.values():
        assert req.vias[0].branch.startswith("z9hG4bK") and req.vias[0].host == ME
    assert proxy.dialogs.ended_calls == [("c1@x", "ftag", "ttag")]
    assert proxy.media.removed == [("c1@x", "media timeout")]
    assert calls.cseqs == {}


def test_call_control_without_a_dialog_only_releases_media():
    proxy = _proxy([])
    assert CallControl(proxy).end_call("gone", "f") == 0
    assert proxy.edge.sent == [] and proxy.media.removed == [("gone", "media timeout")]


def test_call_control_ignores_a_dialog_with_other_tags():
    proxy = _proxy([_dialog(from_tag="someone-else")])
    assert CallControl(proxy).end_call("c1@x", "ftag") == 0
    assert proxy.edge.sent == []


def test_call_control_finds_a_late_offer_call_by_the_callee_tag():
    # INVITE without SDP: the relay's first offer came from the callee, so its "from_tag" is ours to_tag
    proxy = _proxy([_dialog()])
    assert CallControl(proxy).end_call("c1@x", "ttag") == 1
    assert len(proxy.edge.sent) == 2


# -- end to end ----------------------------------------------------------------------------

def _wait(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


def _trace(path: Path) -> list[tuple[float, str, str]]:
    """(wall-clock time, "sent" or "received", first line) of every message in a sipp
    ``-trace_msg`` log: each is headed by a line of dashes and its time stamp."""
    out = []
    blocks = path.read_text(errors="replace").split("----------------------------------------------- ")[1:]
    for block in blocks:
        stamp, what, _blank, first = (block.splitlines() + ["", "", "", ""])[:4]
        seconds, _, fraction = stamp.strip().partition(".")
        when = time.mktime(time.strptime(seconds, "%Y-%m-%d %H:%M:%S")) + float(f"0.{fraction}")
        out.append((when, "sent" if " sent " in what else "received", first.strip()))
    return out


#: the caller's RTP: the 1 s file once, starting as it sends the ACK
RTP_SECONDS = 1.0
#: the relay looks for silent streams every 0.5 s (mediaproxy.relay.TICK), so it reports a
#: timeout up to that much after it is due
RELAY_SCAN = 0.5
#: what else may pass between the relay's report and the BYE reaching each phone: the event
#: to the proxy, two BYEs over loopback (milliseconds), a loaded machine
SLACK = 0.5


@pytest.mark.parametrize("kernel", [False, True], ids=["user-space", "kernel"])
def test_stopped_media_ends_the_call_with_bye_both_ways(tmp_path: Path, sqlite_url, kernel):
    """In user space the BYE comes by the relay's next scan; a kernel-forwarded stream's last
    packets are seen at the counter read after them (every KERNEL_POLL s), so up to that later."""
    require_tool("sipp")
    if kernel and (os.geteuid() != 0 or not shutil.which("nft")):
        pytest.skip("kernel forwarding needs root and nft")
    from mediaproxy.relay import KERNEL_POLL
    from tests.mediaproxy.rtp import start_relay
    from tests.sipproxy_e2e import sipp_support as e2e

    media_timeout = 2
    late = KERNEL_POLL if kernel else 0.0
    e2e.provision(sqlite_url)
    relay, control, (low, high) = start_relay(tmp_path, sqlite_url, media_timeout=media_timeout,
                                              kernel_forwarding=kernel)
    proxy = None
    engine = create_engine(sqlite_url)
    try:
        proxy = e2e.ProxyProcess(tmp_path, sqlite_url, media_relay="always",
                                 sections={"mediaproxy": {"control": f"127.0.0.1:{control}",
                                                          "media_timeout": media_timeout}})
        audio = tmp_path / "tone.pcmu"
        audio.write_bytes(bytes([0xFF, 0x7F] * 4000))  # 1 s of PCMU, then silence
        uac_xml = tmp_path / "e2e_timeout_uac.xml"
        uac_xml.write_text((e2e.SCENARIOS / "e2e_timeout_uac.xml").read_text().replace("RTP_FILE", str(audio)))

        reg = e2e.Sipp(tmp_path, "reg", "e2e_register.xml", proxy.port, rows=[e2e.auth_row("bob", "secret-b")])
        assert reg.wait() == 0, reg.report()
        echo_port = free_port(socket.SOCK_DGRAM) & ~1
        uas = e2e.Sipp(tmp_path, "uas", "e2e_timeout_uas.xml", proxy.port, port=reg.port, server=True,
                       timeout=30, extra=("-rtp_echo", "-mp", str(echo_port), "-mi", "127.0.0.1"))
        uac = e2e.Sipp(tmp_path, "uac", str(uac_xml), proxy.port, timeout=30,
                       rows=[e2e.call_row("alice", "secret-a", "bob")], extra=("-mi", "127.0.0.1"))

        def dialog_rows():
            with DbSession(engine) as db:
                return db.scalars(select(Dialog)).all()

        # the call is established: its dialog row appears
        assert _wait(dialog_rows, 15), f"{uac.report()}\n{proxy.output()[-3000:]}"
        # both UAs get the proxy's BYE (with the Reason the scenarios check) and answer 200
        rc_uac, rc_uas = uac.wait(40), uas.wait(40)
        assert rc_uac == 0 and rc_uas == 0, f"{uac.report()}\n{uas.report()}\n{proxy.output()[-4000:]}"
        # The media stops RTP_SECONDS after the caller's ACK (its scenario starts the stream
        # with the ACK; the callee's echo stops with it).  Each phone's BYE must come
        # media_timeout after that -- not sooner, not much later: by the relay's next scan
        # plus a little slack.  Times from the sipp traces (one wall clock, microseconds).
        caller = _trace(tmp_path / "uac.msg")
        ack_at = [t for t, way, first in caller if way == "sent" and first.startswith("ACK ")][-1]
        stopped_at = ack_at + RTP_SECONDS
        for name, trace in (("caller", caller), ("callee", _trace(tmp_path / "uas.msg"))):
            bye_at = [t for t, way, first in trace if way == "received" and first.startswith("BYE ")]
            assert bye_at, (name, trace)
            silent = bye_at[0] - stopped_at  # the first, should the proxy have resent it
            assert media_timeout - 0.1 <= silent <= media_timeout + RELAY_SCAN + SLACK + late, (
                f"{name}'s BYE came {silent:.2f}s after the media stopped (media_timeout {media_timeout}s)")
        for name in ("uac", "uas"):
            log = (tmp_path / f"{name}.msg").read_text()
            assert 'Reason: SIP ;cause=200;text="Media timeout"' in log
        callee_bye = (tmp_path / "uas.msg").read_text().split("BYE sip:", 1)[1]
        assert "CSeq: 3 BYE" in callee_bye  # above the caller's INVITE (CSeq 2)

        assert _wait(lambda: not dialog_rows(), 5), "dialog row not deleted"
        with DbSession(engine) as db:
            row = _wait(lambda: db.scalars(select(MediaSession)).first(), 10)
        assert row is not None, relay.output()[-3000:]
        assert row.reason == "media timeout"
        log = proxy.output()
        assert "ended by the proxy: Media timeout (BYE to callee and caller" in log, log[-3000:]
        assert "ended (media timeout)" in relay.output()
    finally:
        engine.dispose()
        if proxy is not None:
            proxy.stop()
        relay.stop()


def test_proxy_media_hands_timeouts_to_call_control_else_only_releases():
    from sipproxy.media.relay import MediaTimeout, ProxyMedia

    removed = []
    relays = SimpleNamespace(on_timeout=None, remove=lambda call_id, reason: removed.append((call_id, reason)))
    media = ProxyMedia(relays, "always")
    media.engaged["c1"] = False
    ev = MediaTimeout("c1", "a", "b", 0, "media timeout", "127.0.0.1:1")
    relays.on_timeout(ev)  # nobody took call control: the session is released, no BYE
    assert removed == [("c1", "media timeout")] and "c1" not in media.engaged
    got = []
    media.call_control = got.append
    relays.on_timeout(ev)
    assert got == [ev] and len(removed) == 1


def test_call_control_reaches_a_tcp_caller_over_its_open_connection():
    row = _dialog(caller_contact="<sip:alice@192.168.1.5:5060;transport=tcp>",
                  caller_source="tcp:192.0.2.1:40000")
    proxy = _proxy([row])
    proxy.edge.connections.add(Peer("tcp", "192.0.2.1", 40000))
    CallControl(proxy).end_call("c1@x", "ftag")
    dests = {str(dest) for _, dest in proxy.edge.sent}
    assert dests == {"tcp:192.0.2.1:40000", "udp:198.51.100.2:5080"}
