"""``[sipproxy] worker_ports``: what a worker names in its Via and Record-Route, and which
addresses it takes for its own (no sockets: the Core is built, not bound)."""

from __future__ import annotations

import re

import pytest

from ngnpro.models.config import ConfigError, validate
from sipproxy.runtime.edge import Core
from sipproxy.sip.addressing import Listener

LISTEN = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
UDP = Listener("udp", "127.0.0.1", 5060)
TCP = Listener("tcp", "127.0.0.1", 5060)


def test_off_by_default_the_shared_port_with_rport():
    core = Core(LISTEN, worker=1, workers=2)
    assert core.via_for(UDP, "z9hG4bKx") == "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx;rport"
    assert core.record_route_listener(UDP) is UDP
    assert core.transports.own_udp == []


def test_a_worker_names_its_own_port_in_via_and_record_route():
    core = Core(LISTEN, worker=1, workers=3, worker_ports=5070)
    # no rport: the request leaves from the shared port, its answer goes to the sent-by port
    assert core.via_for(UDP, "z9hG4bKx") == "SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKx"
    assert core.record_route_listener(UDP) == Listener("udp", "127.0.0.1", 5071)
    # a request that came in on a sibling's port and was handed here: this worker holds it now
    assert core.record_route_listener(Listener("udp", "127.0.0.1", 5072)) == Listener("udp", "127.0.0.1", 5071)
    # streams are untouched: a connection already belongs to one worker
    assert core.via_for(TCP, "z9hG4bKy") == "SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKy;rport"
    assert core.record_route_listener(TCP) is TCP
    assert core.transports.own_udp == [Listener("udp", "127.0.0.1", 5071)]


def test_every_workers_port_is_ours():
    core = Core(LISTEN, worker=0, workers=3, worker_ports=5070)
    for port in (5060, 5070, 5071, 5072):
        assert core.is_me("127.0.0.1", port)
    assert not core.is_me("127.0.0.1", 5073)


@pytest.mark.parametrize("sipproxy, message", [
    ({"workers": 4, "worker_ports": 5058}, "5058-5061 (one port per worker) includes the port of listen address udp:127.0.0.1:5060"),
    ({"workers": 2, "worker_ports": 65535}, "65535-65536 (one port per worker) is not within 1024-65535"),
    ({"workers": 2, "worker_ports": 80}, "80-81 (one port per worker) is not within 1024-65535"),
])
def test_bad_worker_ports_are_refused(sipproxy, message):
    with pytest.raises(ConfigError, match=re.escape("sipproxy.worker_ports: " + message)):
        validate({"sipproxy": sipproxy})


def test_worker_ports_beside_the_listeners_are_accepted():
    assert validate({"sipproxy": {"workers": 4, "worker_ports": 5070}})["sipproxy"]["worker_ports"] == 5070
