"""The core's I/O edge in one process: transaction timers, retransmissions, rport."""

from __future__ import annotations

import gevent
from gevent import socket

from sipproxy.runtime.edge import Core
from sipproxy.sip.addressing import Peer
from sipproxy.sip.parser import make_response, parse_message
from sipproxy.sip.transaction import Timers
from tests.helpers import free_port


class Recorder:
    def __init__(self, core):
        self.core = core
        self.requests, self.responses, self.timeouts = [], [], []

    def on_request(self, request, txn, inbound):
        self.requests.append(request)
        if txn is not None:
            self.core.respond(txn, make_response(request, 200, to_tag="t1"))

    def on_response(self, response, txn, source):
        self.responses.append(response)

    def on_timeout(self, txn):
        self.timeouts.append(txn)

    def on_transport_error(self, txn):
        pass

    def on_terminated(self, txn):
        pass


def _core():
    port = free_port()
    core = Core([f"udp:127.0.0.1:{port}"], timers=Timers(t1=0.02, t2=0.08, t4=0.1, d=0.1))
    rec = Recorder(core)
    core.tu = rec
    core.start()
    return core, rec, port


def _request(port, branch="z9hG4bKabc", via_port=9, rport=True):
    rp = ";rport" if rport else ""
    return (f"MESSAGE sip:x@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{via_port}{rp};branch={branch}\r\n"
            "From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\n"
            "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


def test_client_transaction_retransmits_then_times_out():
    core, rec, _port = _core()
    try:
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        req = parse_message(_request(sink.getsockname()[1]))
        req.headers.add("Via", core.via_for(core.transports.listeners[0], "z9hG4bKout.0.1"), top=True)
        core.send_request(req, Peer("udp", "127.0.0.1", sink.getsockname()[1]))
        got = []
        with gevent.Timeout(3):
            while not rec.timeouts:
                sink.settimeout(0.05)
                try:
                    got.append(sink.recv(65535))
                except OSError:
                    pass
        assert len(got) >= 3  # Timer E retransmissions (UDP)
        assert len(rec.timeouts) == 1  # Timer F: 64*T1
        assert core.pending_timers() == 0  # the terminated transaction left no timer behind
        sink.close()
    finally:
        core.stop()


def test_server_transaction_absorbs_retransmission_and_answers_to_rport():
    core, rec, port = _core()
    try:
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind(("127.0.0.1", 0))
        client.settimeout(2)
        data = _request(port)
        client.sendto(data, ("127.0.0.1", port))
        first = client.recv(65535)
        client.sendto(data, ("127.0.0.1", port))  # retransmission: the same answer again
        second = client.recv(65535)
        assert first == second and first.startswith(b"SIP/2.0 200")
        assert f";rport={client.getsockname()[1]}".encode() in first  # RFC 3581
        assert len(rec.requests) == 1  # the transaction user saw it once
        client.close()
    finally:
        core.stop()


def test_response_not_for_us_is_dropped():
    core, rec, port = _core()
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx\r\n"
                 b"From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
                 b"Content-Length: 0\r\n\r\n", ("127.0.0.1", port))
        gevent.sleep(0.2)
        assert not rec.responses and core.dropped == 1
        s.close()
    finally:
        core.stop()


class SlowTU(Recorder):
    """Answers an INVITE with 486 after waiting (as a TU waiting on a database does)."""

    def on_request(self, request, txn, inbound):
        self.requests.append(request)
        if txn is not None:
            gevent.sleep(0.3)
            self.core.respond(txn, make_response(request, 486, to_tag="t1"))


class FastTU(Recorder):
    def on_request(self, request, txn, inbound):
        self.requests.append(request)
        if txn is not None:
            self.core.respond(txn, make_response(request, 486, to_tag="t1"))


def _invite_answers(tu_class):
    core, _rec, port = _core()
    core.tu = tu_class(core)
    try:
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind(("127.0.0.1", 0))
        client.settimeout(2)
        data = _request(port).replace(b"MESSAGE", b"INVITE")
        client.sendto(data, ("127.0.0.1", port))
        answers = [client.recv(65535).split(b" ", 2)[1]]
        while answers[-1] == b"100":
            answers.append(client.recv(65535).split(b" ", 2)[1])
        client.close()
        return answers
    finally:
        core.stop()


def test_100_trying_goes_out_as_soon_as_the_handler_waits():
    """RFC 3261 16.2: the 100 is owed when the answer will take a while -- a handler that
    blocks (its lane is taken over) has it sent then, not when it is done; one that answers
    in line sends its final answer alone."""
    assert _invite_answers(SlowTU) == [b"100", b"486"]
    assert _invite_answers(FastTU) == [b"486"]
