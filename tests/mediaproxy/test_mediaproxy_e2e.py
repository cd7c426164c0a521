"""End to end: two sipp user agents with real RTP call through ``python -m sipproxy`` and
``python -m mediaproxy``: the caller streams PCMU (sipp ``rtp_stream``), the callee echoes
it (sipp ``-rtp_echo``).  Each side's SDP must point at the relay, and the relay's summary in
``media_sessions`` must count the packets both ways."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session as DbSession

from ngnpro.models import MediaSession
from tests.helpers import free_port, require_tool
from tests.mediaproxy.rtp import start_relay

HERE = Path(__file__).resolve().parent


def _sdp_media(text: str) -> list[tuple[str, int]]:
    """(c= address, m=audio port) of every SDP in a sipp message log."""
    out, addr = [], None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("c=IN IP"):
            addr = line.split()[2]
        elif line.startswith("m=audio"):
            out.append((addr, int(line.split()[1])))
    return out


def test_call_with_rtp_through_proxy_and_relay(tmp_path, sqlite_url):
    require_tool("sipp")
    e2e = pytest.importorskip("tests.sipproxy_e2e.sipp_support")
    e2e.provision(sqlite_url)
    relay, control, (low, high) = start_relay(tmp_path, sqlite_url)
    proxy = None
    try:
        proxy = e2e.ProxyProcess(tmp_path, sqlite_url, media_relay="always",
                                 sections={"mediaproxy": {"control": f"127.0.0.1:{control}"}})
        audio = tmp_path / "tone.pcmu"
        audio.write_bytes(bytes([0xFF, 0x7F] * 4000))  # 1 s of PCMU
        uac_xml = tmp_path / "mp_uac_rtp.xml"
        uac_xml.write_text((HERE / "sipp" / "mp_uac_rtp.xml").read_text().replace("RTP_FILE", str(audio)))

        reg = e2e.Sipp(tmp_path, "reg", "e2e_register.xml", proxy.port, rows=[e2e.auth_row("bob", "secret-b")])
        assert reg.wait() == 0, reg.report()
        echo_port = free_port(socket.SOCK_DGRAM) & ~1
        uas = e2e.Sipp(tmp_path, "uas", "e2e_uas.xml", proxy.port, port=reg.port, server=True,
                       extra=("-rtp_echo", "-mp", str(echo_port), "-mi", "127.0.0.1"))
        uac = e2e.Sipp(tmp_path, "uac", str(uac_xml), proxy.port, rows=[e2e.call_row("alice", "secret-a", "bob")],
                       extra=("-mi", "127.0.0.1"))
        rc_uac, rc_uas = uac.wait(40), uas.wait(40)
        assert rc_uac == 0 and rc_uas == 0, f"{uac.report()}\n{uas.report()}\n{proxy.output()[-4000:]}"

        # the SDP each side saw points at the relay
        callee_saw = _sdp_media((tmp_path / "uas.msg").read_text())
        caller_saw = _sdp_media((tmp_path / "uac.msg").read_text())
        invite_at_callee, ok_at_caller = callee_saw[0], caller_saw[-1]  # received, not sent
        assert low <= invite_at_callee[1] < high and low <= ok_at_caller[1] < high, (callee_saw, caller_saw)
        assert invite_at_callee[1] != ok_at_caller[1]  # one relay port pair per party
        assert callee_saw[-1][1] == echo_port and caller_saw[0][1] not in (invite_at_callee[1], ok_at_caller[1])

        # the relay's summary row counts the media both ways
        engine = create_engine(sqlite_url)
        row, deadline = None, time.monotonic() + 20
        while row is None and time.monotonic() < deadline:
            with DbSession(engine) as db:
                row = db.scalars(select(MediaSession)).first()
            time.sleep(0.2)
        engine.dispose()
        assert row is not None, relay.output()[-3000:]
        stream = json.loads(row.streams)[0]
        assert row.reason == "bye"
        assert stream["codec"] == "PCMU"
        # the caller plays the 1 s file twice (rtp_stream="...,2,0"): 160-byte PCMU payloads
        # every 20 ms, 100 packets, and the callee echoes each.  All of them must cross the
        # relay: on loopback at 50 packets/s nothing is lost, the relay session exists
        # before the first packet (the caller starts streaming after the 200 OK, which
        # carried the relay's answer), and the BYE goes 1 s after the stream's end, so no
        # packet is still on its way when the session's counters are taken.
        sent = 2 * len(audio.read_bytes()) // 160
        assert stream["packets_caller_to_callee"] == sent, stream
        assert stream["packets_callee_to_caller"] == sent, stream  # echoed back, every one
        assert stream["bytes_caller_to_callee"] == stream["bytes_callee_to_caller"] == sent * (12 + 160), stream
        assert stream["caller"]["dropped"] == 0 and stream["callee"]["dropped"] == 0
    finally:
        if proxy is not None:
            proxy.stop()
        relay.stop()


def test_hold_reinvite_keeps_the_relay_ports(tmp_path, sqlite_url):
    require_tool("sipp")
    e2e = pytest.importorskip("tests.sipproxy_e2e.sipp_support")
    e2e.provision(sqlite_url)
    relay, control, (low, high) = start_relay(tmp_path, sqlite_url)
    proxy = None
    try:
        proxy = e2e.ProxyProcess(tmp_path, sqlite_url, media_relay="always",
                                 sections={"mediaproxy": {"control": f"127.0.0.1:{control}"}})
        reg = e2e.Sipp(tmp_path, "reg", "e2e_register.xml", proxy.port, rows=[e2e.auth_row("bob", "secret-b")])
        assert reg.wait() == 0, reg.report()
        uas = e2e.Sipp(tmp_path, "uas", str(HERE / "sipp" / "mp_uas_hold.xml"), proxy.port, port=reg.port,
                       server=True, extra=("-mi", "127.0.0.1", "-mp", str(free_port(socket.SOCK_DGRAM))))
        uac = e2e.Sipp(tmp_path, "uac", str(HERE / "sipp" / "mp_uac_hold.xml"), proxy.port,
                       rows=[e2e.call_row("alice", "secret-a", "bob")],
                       extra=("-mi", "127.0.0.1", "-mp", str(free_port(socket.SOCK_DGRAM))))
        rc_uac, rc_uas = uac.wait(40), uas.wait(40)
        assert rc_uac == 0 and rc_uas == 0, f"{uac.report()}\n{uas.report()}\n{proxy.output()[-4000:]}"
        callee_log = (tmp_path / "uas.msg").read_text()
        callee_saw = _sdp_media(callee_log)  # INVITE in, 200 out, re-INVITE in, 200 out
        caller_saw = _sdp_media((tmp_path / "uac.msg").read_text())  # INVITE x2 out, 200 in, re-INVITE out, 200 in
        assert len(callee_saw) == 4 and len(caller_saw) == 5, (callee_saw, caller_saw)
        assert callee_saw[0] == callee_saw[2] and low <= callee_saw[0][1] < high
        assert caller_saw[2] == caller_saw[4] and low <= caller_saw[2][1] < high
        assert "a=sendonly" in callee_log  # the hold reached the callee, through the relay
        deadline = time.monotonic() + 10
        while "ended (bye)" not in relay.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "ended (bye)" in relay.output()
        assert relay.output().count(" created (1 streams)") == 1  # one session, updated in place
    finally:
        if proxy is not None:
            proxy.stop()
        relay.stop()


def test_calls_go_to_the_second_relay_when_the_first_is_stopped(tmp_path, sqlite_url):
    require_tool("sipp")
    e2e = pytest.importorskip("tests.sipproxy_e2e.sipp_support")
    e2e.provision(sqlite_url)
    one, c1, _ = start_relay(tmp_path, sqlite_url, name="relay1")
    two, c2, (low, high) = start_relay(tmp_path, sqlite_url, name="relay2")
    proxy = None
    try:
        proxy = e2e.ProxyProcess(tmp_path, sqlite_url, media_relay="always",
                                 media_relays=[f"127.0.0.1:{c1}", f"127.0.0.1:{c2}"])
        one.stop()
        for n in range(2):
            reg = e2e.Sipp(tmp_path, f"reg{n}", "e2e_register.xml", proxy.port, rows=[e2e.auth_row("bob", "secret-b")])
            assert reg.wait() == 0, reg.report()
            uas = e2e.Sipp(tmp_path, f"uas{n}", "e2e_uas.xml", proxy.port, port=reg.port, server=True,
                           extra=("-mi", "127.0.0.1", "-mp", str(free_port(socket.SOCK_DGRAM))))
            uac = e2e.Sipp(tmp_path, f"uac{n}", "e2e_uac.xml", proxy.port,
                           rows=[e2e.call_row("alice", "secret-a", "bob")],
                           extra=("-mi", "127.0.0.1", "-mp", str(free_port(socket.SOCK_DGRAM))))
            rc_uac, rc_uas = uac.wait(40), uas.wait(40)
            assert rc_uac == 0 and rc_uas == 0, f"{uac.report()}\n{uas.report()}\n{proxy.output()[-4000:]}"
            invite_at_callee = _sdp_media((tmp_path / f"uas{n}.msg").read_text())[0]
            assert low <= invite_at_callee[1] < high, invite_at_callee  # relay2's ports
        deadline = time.monotonic() + 10
        while two.output().count("ended (bye)") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert two.output().count("ended (bye)") == 2
    finally:
        if proxy is not None:
            proxy.stop()
        one.stop()
        two.stop()
