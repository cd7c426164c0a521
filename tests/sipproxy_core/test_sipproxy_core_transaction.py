"""The RFC 3261 section 17 state table, driven with a fake clock (no sockets, no sleeping)."""

from __future__ import annotations

import pytest

from sipproxy.sip.parser import Request, Response, make_response, parse_message
from sipproxy.sip.transaction import (
    ICT,
    IST,
    NICT,
    NIST,
    TABLE,
    TERMINATED,
    CancelTimer,
    Deliver,
    Send,
    StartTimer,
    Terminated,
    Timeout,
    Timers,
    TransactionLayer,
    TransportError,
    make_cancel,
    stateless_tag,
)

T1, T2, T4 = 0.5, 4.0, 5.0


class Net:
    """Executes a layer's actions against a fake clock and records what happened."""

    def __init__(self, reliable: bool = False) -> None:
        self.layer = TransactionLayer(Timers(t1=T1, t2=T2, t4=T4, d=32.0))
        self.reliable = reliable
        self.now = 0.0
        self.pending: list[tuple[float, int, StartTimer]] = []
        self.seq = 0
        self.sent: list[tuple[float, Send]] = []
        self.delivered: list[Deliver] = []
        self.events: list = []
        #: deferred 100s: held (a TU that answers at once), else made at once, as the edge
        #: does for a TU that does not
        self.hold_trying = False
        self.held: list[Send] = []

    def run(self, actions: list) -> list:
        for a in actions:
            if isinstance(a, StartTimer):
                self.seq += 1
                self.pending.append((self.now + a.delay, self.seq, a))
            elif isinstance(a, Send) and a.deferrable:
                assert a.message is None and a.data == b""  # made only when sent
                if self.hold_trying:
                    self.held.append(a)
                else:
                    self.run(self.layer.send_trying(a.transaction))
            elif isinstance(a, Send):
                self.sent.append((self.now, a))
            elif isinstance(a, Deliver):
                self.delivered.append(a)
            elif isinstance(a, CancelTimer):
                pass  # stale timers are ignored by the layer: prove it by not cancelling
            else:
                self.events.append(a)
        return actions

    def advance(self, dt: float) -> None:
        end = self.now + dt
        while True:
            due = [p for p in self.pending if p[0] <= end + 1e-9]
            if not due:
                break
            first = min(due)
            self.pending.remove(first)
            self.now = first[0]
            self.run(self.layer.timer_fired(first[2]))
        self.now = end

    def send_times(self, method_or_status) -> list[float]:
        out = []
        for t, s in self.sent:
            m = s.message if s.message is not None else parse_message(s.data)  # a settled resend
            if (isinstance(m, Request) and m.method == method_or_status) or (
                isinstance(m, Response) and m.status == method_or_status
            ):
                out.append(round(t, 6))
        return out

    def kinds(self) -> list[type]:
        return [type(e) for e in self.events]


def invite(branch: str = "z9hG4bK-1", method: str = "INVITE", cseq: int = 1) -> Request:
    return parse_message(
        (
            f"{method} sip:bob@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n"
            "Max-Forwards: 70\r\n"
            "Route: <sip:proxy.example.com;lr>\r\n"
            "From: <sip:alice@example.com>;tag=a1\r\n"
            "To: <sip:bob@example.com>\r\n"
            "Call-ID: call-1@example.com\r\n"
            f"CSeq: {cseq} {method}\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
    )


def wire(msg):
    """What the other side would parse (proves every sent message is well-formed)."""
    return parse_message(msg.to_bytes())


# -- INVITE client transaction ---------------------------------------------------------


def test_ict_retransmits_with_timer_a_then_times_out_with_timer_b() -> None:
    net = Net()
    txn, actions = net.layer.send_request(invite(), ("udp", "192.0.2.9", 5060))
    net.run(actions)
    assert txn.machine == ICT and txn.state == "Calling"
    net.advance(100)
    assert net.send_times("INVITE") == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert net.kinds() == [Timeout, Terminated] and txn.state == TERMINATED
    assert net.now and len(net.layer) == 0
    assert all(s.data == net.sent[0][1].data for _t, s in net.sent)


def test_ict_provisional_stops_retransmission_final_is_acked_and_absorbed() -> None:
    net = Net()
    req = invite()
    txn, actions = net.layer.send_request(req, "dest")
    net.run(actions)
    net.advance(0.6)
    net.run(net.layer.receive(wire(make_response(req, 180, to_tag="b1"))))
    assert txn.state == "Proceeding"
    net.advance(60)  # no Timer A/B in Proceeding
    assert net.send_times("INVITE") == [0, 0.5] and not net.events
    busy = wire(make_response(req, 486, to_tag="b1"))
    net.run(net.layer.receive(busy))
    assert txn.state == "Completed"
    assert [d.message.status for d in net.delivered] == [180, 486]
    (ack_send,) = [s for _t, s in net.sent if s.message.method == "ACK"]
    ack = parse_message(ack_send.data)
    assert ack.method == "ACK" and ack.cseq == (1, "ACK") and str(ack.uri) == str(req.uri)
    assert ack.to.tag == "b1" and ack.from_.tag == "a1" and ack.call_id == req.call_id
    assert ack.vias[0].branch == "z9hG4bK-1" and len(ack.vias) == 1
    assert [str(r.uri) for r in ack.routes] == ["sip:proxy.example.com;lr"]
    # a retransmitted 486 is absorbed and answered with the same ACK
    net.run(net.layer.receive(wire(busy)))
    assert len(net.delivered) == 2 and len(net.send_times("ACK")) == 2
    net.advance(31.9)
    assert txn.state == "Completed"
    net.advance(0.2)  # Timer D
    assert txn.state == TERMINATED and net.kinds() == [Terminated]


def test_ict_reliable_no_retransmissions_and_timer_d_zero() -> None:
    net = Net()
    req = invite()
    txn, actions = net.layer.send_request(req, "dest", reliable=True)
    net.run(actions)
    net.advance(10)
    assert net.send_times("INVITE") == [0]
    net.run(net.layer.receive(wire(make_response(req, 404, to_tag="x"))))
    assert net.send_times("ACK") == [10] and txn.state == TERMINATED
    assert net.kinds() == [Terminated]


def test_ict_reliable_timer_b() -> None:
    net = Net()
    txn, actions = net.layer.send_request(invite(), "dest", reliable=True)
    net.run(actions)
    net.advance(31.9)
    assert not net.events
    net.advance(0.2)
    assert net.kinds() == [Timeout, Terminated]


def test_ict_2xx_goes_to_tu_and_accepted_passes_retransmissions() -> None:
    net = Net()
    req = invite()
    txn, actions = net.layer.send_request(req, "dest")
    net.run(actions)
    ok = make_response(req, 200, to_tag="b2")
    net.run(net.layer.receive(wire(ok)))
    assert txn.state == "Accepted" and not net.send_times("ACK")  # 2xx ACK is the TU's
    net.run(net.layer.receive(wire(ok)))
    assert [d.message.status for d in net.delivered] == [200, 200]
    assert all(d.transaction is txn for d in net.delivered)
    net.advance(64 * T1 + 0.1)  # Timer M
    assert txn.state == TERMINATED
    net.run(net.layer.receive(wire(ok)))  # now a stray: to the TU without transaction
    assert net.delivered[-1].transaction is None
    assert net.send_times("INVITE") == [0]  # Timer A stopped by the 2xx


def test_ict_transport_error() -> None:
    net = Net()
    txn, actions = net.layer.send_request(invite(), "dest")
    net.run(actions)
    net.run(net.layer.transport_error(txn))
    assert net.kinds() == [TransportError, Terminated] and len(net.layer) == 0
    net.advance(100)  # its timers fire stale and change nothing
    assert net.send_times("INVITE") == [0] and len(net.events) == 2


# -- non-INVITE client transaction -----------------------------------------------------


def test_nict_timer_e_caps_at_t2_and_timer_f_times_out() -> None:
    net = Net()
    txn, actions = net.layer.send_request(invite(method="OPTIONS"), "dest")
    net.run(actions)
    assert txn.machine == NICT
    net.advance(40)
    assert net.send_times("OPTIONS") == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5,
                                          31.5]
    assert net.kinds() == [Timeout, Terminated]


def test_nict_proceeding_retransmits_every_t2_then_completes() -> None:
    net = Net()
    req = invite(method="REGISTER")
    txn, actions = net.layer.send_request(req, "dest")
    net.run(actions)
    net.advance(0.2)
    net.run(net.layer.receive(wire(make_response(req, 100))))
    assert txn.state == "Proceeding"
    net.advance(10)
    assert net.send_times("REGISTER") == [0, 0.5, 4.5, 8.5]
    net.run(net.layer.receive(wire(make_response(req, 200, to_tag="r"))))
    assert txn.state == "Completed"
    net.run(net.layer.receive(wire(make_response(req, 200, to_tag="r"))))  # absorbed
    assert [d.message.status for d in net.delivered] == [100, 200]
    net.advance(T4 + 0.1)  # Timer K
    assert txn.state == TERMINATED
    assert net.send_times("REGISTER") == [0, 0.5, 4.5, 8.5]


def test_nict_reliable_timer_k_zero() -> None:
    net = Net()
    req = invite(method="BYE")
    txn, actions = net.layer.send_request(req, "dest", reliable=True)
    net.run(actions)
    net.run(net.layer.receive(wire(make_response(req, 481))))
    assert txn.state == TERMINATED and net.kinds() == [Terminated]


# -- INVITE server transaction ---------------------------------------------------------


def test_ist_100_trying_retransmissions_and_ack_absorbed() -> None:
    net = Net()
    req = invite()
    net.run(net.layer.receive(wire(req), source=("udp", "192.0.2.1", 5060)))
    (d,) = net.delivered
    txn = d.transaction
    assert txn.machine == IST and txn.state == "Proceeding"
    assert net.send_times(100) == [0] and net.sent[0][1].dest == ("udp", "192.0.2.1", 5060)
    net.run(net.layer.receive(wire(req)))  # retransmission: the 100 again, not to the TU
    assert net.send_times(100) == [0, 0] and len(net.delivered) == 1
    net.run(net.layer.send_response(txn, make_response(req, 180, to_tag="t")))
    net.run(net.layer.receive(wire(req)))
    assert net.send_times(180) == [0, 0]
    net.run(net.layer.send_response(txn, make_response(req, 486, to_tag="t")))
    assert txn.state == "Completed"
    net.advance(T1 * 7 + 0.01)  # Timer G: T1, 2T1, 4T1 after
    assert net.send_times(486) == [0, 0.5, 1.5, 3.5]
    net.advance(10)
    assert net.send_times(486)[4:] == [7.5, 11.5]  # capped at T2
    ack = wire(parse_message(
        net.sent[-1][1].data.replace(b"SIP/2.0 486 Busy Here", b"ACK sip:bob@example.com SIP/2.0")
        .replace(b"CSeq: 1 INVITE", b"CSeq: 1 ACK")
    ))
    net.run(net.layer.receive(ack))
    assert txn.state == "Confirmed" and len(net.delivered) == 1  # ACK absorbed
    sent_before = len(net.sent)
    net.run(net.layer.receive(ack))  # ACK retransmission absorbed too
    net.advance(T4 - 0.1)
    assert txn.state == "Confirmed" and len(net.sent) == sent_before  # no more G
    net.advance(0.2)  # Timer I
    assert txn.state == TERMINATED and net.kinds() == [Terminated]


def _ack_for(response_data: bytes) -> Request:
    return wire(parse_message(
        response_data.replace(b"SIP/2.0 407 Proxy Authentication Required", b"ACK sip:bob@example.com SIP/2.0")
        .replace(b"CSeq: 1 INVITE", b"CSeq: 1 ACK")
    ))


def test_stateless_answer_keeps_no_transaction_and_absorbs_its_ack() -> None:
    """RFC 3261 8.2.7: a challenge is sent once, with no transaction, no 100 and no Timer
    G/H; a retransmitted request is answered anew with the same To tag; its ACK is absorbed."""
    net = Net()
    net.hold_trying = True
    req = invite()
    net.run(net.layer.receive(wire(req), source=("udp", "192.0.2.1", 5060)))
    (d,) = net.delivered
    assert len(net.held) == 1 and not net.sent  # the 100 is held back, not made
    tag = stateless_tag(d.message)
    challenge = make_response(d.message, 407, to_tag=tag)
    actions = net.run(net.layer.reply_stateless(d.transaction, challenge))
    assert [type(a) for a in actions] == [Send]
    assert actions[0].transaction is None and actions[0].dest == ("udp", "192.0.2.1", 5060)
    assert d.transaction.terminated and len(net.layer) == 0 and not net.pending
    assert net.layer.send_trying(d.transaction) == []  # answered: no 100 after all
    net.advance(64 * T1)
    assert len(net.sent) == 1  # sent once, never resent
    # the retransmission is a new request to the TU, whose answer has the same To tag
    net.run(net.layer.receive(wire(req), source=("udp", "192.0.2.1", 5060)))
    assert len(net.delivered) == 2 and stateless_tag(net.delivered[1].message) == tag
    net.run(net.layer.reply_stateless(net.delivered[1].transaction, challenge))
    # another request (the next INVITE, with credentials) gets another tag
    assert stateless_tag(wire(invite(branch="z9hG4bK-2", cseq=2))) != tag
    assert net.layer.receive(_ack_for(actions[0].data)) == []  # the ACK: absorbed
    foreign = _ack_for(make_response(req, 407, to_tag="uas-tag").to_bytes())
    (stray,) = net.layer.receive(foreign)  # an ACK with another tag still reaches the TU
    assert isinstance(stray, Deliver) and stray.transaction is None


def test_deferred_100_is_made_for_a_retransmission_and_only_once() -> None:
    """The TU is still at work when the INVITE comes again: the retransmission gets the 100
    (made then); the edge's later ask for the deferred one sends nothing more."""
    net = Net()
    net.hold_trying = True
    req = invite()
    net.run(net.layer.receive(wire(req)))
    net.run(net.layer.receive(wire(req)))
    assert net.send_times(100) == [0] and len(net.delivered) == 1
    (held,) = net.held
    assert net.layer.send_trying(held.transaction) == []
    net.run(net.layer.send_response(held.transaction, make_response(req, 180, to_tag="t")))
    assert net.send_times(180) == [0]


def test_stateless_answer_after_a_response_stays_stateful() -> None:
    net = Net()
    req = invite()
    net.run(net.layer.receive(wire(req)))
    (d,) = net.delivered
    net.run(net.layer.send_response(d.transaction, make_response(req, 180, to_tag="t")))
    net.run(net.layer.reply_stateless(d.transaction, make_response(req, 407, to_tag="t")))
    assert d.transaction.state == "Completed" and len(net.layer) == 1
    net.advance(T1 + 0.01)
    assert net.send_times(407) == [0, T1]  # Timer G: the transaction resends it


def test_ist_timer_h_without_ack() -> None:
    net = Net()
    req = invite()
    net.run(net.layer.receive(wire(req)))
    txn = net.delivered[0].transaction
    net.run(net.layer.send_response(txn, make_response(req, 503, to_tag="t")))
    net.advance(64 * T1 - 0.1)
    assert txn.state == "Completed"
    net.advance(0.2)
    assert net.kinds() == [Timeout, Terminated]


def test_ist_reliable_no_timer_g_and_timer_i_zero() -> None:
    net = Net()
    req = invite()
    net.run(net.layer.receive(wire(req), reliable=True))
    txn = net.delivered[0].transaction
    net.run(net.layer.send_response(txn, make_response(req, 404, to_tag="t")))
    net.advance(20)
    assert net.send_times(404) == [0]
    ack = invite(method="ACK")
    net.run(net.layer.receive(ack))
    assert txn.state == TERMINATED


def test_ist_2xx_accepted_absorbs_invite_and_passes_ack() -> None:
    net = Net()
    req = invite()
    net.run(net.layer.receive(wire(req)))
    txn = net.delivered[0].transaction
    net.run(net.layer.send_response(txn, make_response(req, 200, to_tag="t")))
    assert txn.state == "Accepted"
    n = len(net.sent)
    net.run(net.layer.receive(wire(req)))  # INVITE retransmission: absorbed (RFC 6026)
    assert len(net.sent) == n
    net.run(net.layer.send_response(txn, make_response(req, 200, to_tag="t")))  # 2xx retrans.
    assert net.send_times(200) == [0, 0]
    net.run(net.layer.receive(invite(method="ACK")))
    assert net.delivered[-1].message.method == "ACK" and net.delivered[-1].transaction is txn
    net.advance(64 * T1 + 0.1)  # Timer L
    assert txn.state == TERMINATED
    net.run(net.layer.receive(invite(method="ACK")))  # stray ACK: to the TU, no transaction
    assert net.delivered[-1].transaction is None


# -- non-INVITE server transaction -----------------------------------------------------


def test_nist_absorbs_retransmissions_and_timer_j() -> None:
    net = Net()
    req = invite(method="OPTIONS")
    net.run(net.layer.receive(wire(req)))
    txn = net.delivered[0].transaction
    assert txn.machine == NIST and txn.state == "Trying" and not net.sent  # no 100 for non-INVITE
    net.run(net.layer.receive(wire(req)))
    assert not net.sent and len(net.delivered) == 1
    net.run(net.layer.send_response(txn, make_response(req, 200, to_tag="o")))
    net.run(net.layer.receive(wire(req)))
    assert net.send_times(200) == [0, 0]
    net.run(net.layer.send_response(txn, make_response(req, 500)))  # late TU answer: ignored
    assert not net.send_times(500)
    net.advance(64 * T1 - 0.1)
    assert txn.state == "Completed"
    net.advance(0.2)
    assert txn.state == TERMINATED


def test_settled_transactions_keep_bytes_not_messages() -> None:
    """After the final response a transaction lingers (up to 32 s) only to absorb or
    resend: it drops the parsed messages and resends the very same bytes."""
    net = Net()
    req = invite(method="OPTIONS")
    net.run(net.layer.receive(wire(req)))
    nist = net.delivered[0].transaction
    net.run(net.layer.send_response(nist, make_response(req, 200, to_tag="o")))
    assert nist.state == "Completed" and nist.request is None and nist.last_response is None
    net.run(net.layer.receive(wire(req)))
    first, again = [s for _t, s in net.sent]
    assert again.message is None and again.data == first.data and again.dest == first.dest

    client = Net()
    inv = invite()
    ict, actions = client.layer.send_request(inv, "dest")
    client.run(actions)
    busy = wire(make_response(inv, 486, to_tag="b"))
    client.run(client.layer.receive(busy))
    assert ict.state == "Completed" and ict.request is None and ict.ack is None
    client.run(client.layer.receive(wire(busy)))
    acks = [s for _t, s in client.sent if s.data.startswith(b"ACK ")]
    assert len(acks) == 2 and acks[1].data == acks[0].data and acks[1].message is None


def test_nist_proceeding_resends_provisional() -> None:
    net = Net()
    req = invite(method="REGISTER")
    net.run(net.layer.receive(wire(req), reliable=True))
    txn = net.delivered[0].transaction
    net.run(net.layer.send_response(txn, make_response(req, 100)))
    net.run(net.layer.receive(wire(req)))
    assert txn.state == "Proceeding" and net.send_times(100) == [0, 0]
    net.run(net.layer.send_response(txn, make_response(req, 200, to_tag="o")))
    assert txn.state == TERMINATED  # Timer J is 0 on reliable transports


# -- CANCEL ---------------------------------------------------------------------------


def test_cancel_matches_invite_and_487_flow() -> None:
    """UAC layer -> wire -> proxy layer: CANCEL, 200 to CANCEL, 487 to INVITE, hop-by-hop ACK."""
    uac, proxy = Net(), Net()
    inv = invite()
    ictx, actions = uac.layer.send_request(inv, "proxy")
    uac.run(actions)
    proxy.run(proxy.layer.receive(parse_message(uac.sent[-1][1].data), source="uac"))
    ist = proxy.delivered[-1].transaction
    for _t, s in proxy.sent:  # the 100 reaches the UAC
        uac.run(uac.layer.receive(parse_message(s.data)))
    assert ictx.state == "Proceeding"
    cancel = make_cancel(inv)
    assert cancel.cseq == (1, "CANCEL") and cancel.vias[0].branch == inv.vias[0].branch
    cctx, actions = uac.layer.send_request(cancel, "proxy")
    uac.run(actions)
    proxy.run(proxy.layer.receive(parse_message(uac.sent[-1][1].data), source="uac"))
    cancel_in = proxy.delivered[-1]
    assert cancel_in.message.method == "CANCEL" and cancel_in.transaction.machine == NIST
    assert cancel_in.transaction is not ist
    assert proxy.layer.match_cancel(cancel_in.message) is ist
    proxy.run(proxy.layer.send_response(cancel_in.transaction,
                                        make_response(cancel_in.message, 200, to_tag="c")))
    proxy.run(proxy.layer.send_response(ist, make_response(ist.request, 487, to_tag="c")))
    n = len(proxy.sent)
    for _t, s in proxy.sent[-2:]:
        uac.run(uac.layer.receive(parse_message(s.data)))
    assert cctx.state == "Completed" and ictx.state == "Completed"
    assert [d.message.status for d in uac.delivered] == [100, 200, 487]
    ack = parse_message(uac.sent[-1][1].data)
    assert ack.method == "ACK"
    proxy.run(proxy.layer.receive(ack))
    assert ist.state == "Confirmed"
    assert len(proxy.sent) == n and proxy.delivered[-1] is cancel_in  # ACK absorbed


def test_cancel_without_matching_invite() -> None:
    net = Net()
    assert net.layer.match_cancel(make_cancel(invite())) is None


def test_rfc2543_matching_without_magic_cookie() -> None:
    net = Net()
    old = invite(branch="1234")
    net.run(net.layer.receive(wire(old)))
    txn = net.delivered[0].transaction
    net.run(net.layer.receive(wire(old)))
    assert len(net.delivered) == 1 and len(net.layer) == 1
    assert net.layer.match_cancel(make_cancel(old)) is txn
    cookie_only = invite(branch="z9hG4bK")  # RFC 4475 3.2.1: only the cookie: 2543 rules
    net.run(net.layer.receive(wire(cookie_only)))
    assert len(net.delivered) == 2


def test_same_branch_different_sent_by_is_another_transaction() -> None:
    net = Net()
    a = invite()
    b = parse_message(a.to_bytes().replace(b"192.0.2.1:5060", b"192.0.2.2:5060"))
    net.run(net.layer.receive(a))
    net.run(net.layer.receive(b))
    assert len(net.delivered) == 2 and len(net.layer) == 2


# -- the table itself ---------------------------------------------------------------------


@pytest.mark.parametrize("machine", [ICT, NICT, IST, NIST])
def test_every_state_can_reach_terminated(machine: str) -> None:
    edges: dict[str, set[str]] = {}
    for (m, state, _event), (new, _actions) in TABLE.items():
        if m == machine:
            edges.setdefault(state, set()).add(new)
    for state in edges:
        seen, todo = set(), [state]
        while todo:
            s = todo.pop()
            if s in seen:
                continue
            seen.add(s)
            todo.extend(edges.get(s, ()))
        assert TERMINATED in seen, state
