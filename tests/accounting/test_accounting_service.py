"""The proxy's side of accounting (sipproxy.accounting.service.Accounting): SIP messages in,
records in the local queue -- committed in groups by a greenlet, a call's end waiting for
its Start when another worker has not committed it yet, everything committed at stop."""

from __future__ import annotations

from types import SimpleNamespace

import gevent
import pytest

from sipproxy.accounting import service
from sipproxy.accounting.radius import RecordQueue
from sipproxy.accounting.service import Accounting
from sipproxy.dialog.state import DialogInfo
from sipproxy.sip.addressing import Peer
from sipproxy.sip.parser import parse_message

INVITE = (b"INVITE sip:bob@example.com SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK1\r\n"
          b"From: <sip:alice@example.com>;tag=ft\r\nTo: <sip:bob@example.com>\r\n"
          b"Call-ID: call-1\r\nCSeq: 2 INVITE\r\nUser-Agent: phone/1\r\nContent-Length: 0\r\n\r\n")
OK = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK1\r\n"
      b"From: <sip:alice@example.com>;tag=ft\r\nTo: <sip:bob@example.com>;tag=tt\r\n"
      b"Call-ID: call-1\r\nCSeq: 2 INVITE\r\nServer: pbx/2\r\nContent-Length: 0\r\n\r\n")
BUSY = OK.replace(b"200 OK", b"486 Busy Here").replace(b"tag=tt", b"tag=busy")
BYE = (b"BYE sip:bob@192.0.2.9 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK2\r\n"
       b"From: <sip:bob@example.com>;tag=tt\r\nTo: <sip:alice@example.com>;tag=ft\r\n"
       b"Call-ID: call-1\r\nCSeq: 1 BYE\r\nReason: Q.850;cause=16;text=\"Normal call clearing\"\r\n"
       b"Content-Length: 0\r\n\r\n")

INBOUND = SimpleNamespace(source=Peer("udp", "192.0.2.7", 5062),
                          listener=SimpleNamespace(host="198.51.100.1", port=5060))
INFO = DialogInfo(call_id="call-1", from_tag="ft", to_tag="tt", caller="alice@example.com",
                  callee="bob@example.com", caller_cseq=2)


def _answer(acct: Accounting) -> None:
    req = parse_message(INVITE)
    ctx = SimpleNamespace(request=req, inbound=INBOUND, caller="alice@example.com", billing_party="")
    branch = SimpleNamespace(request=SimpleNamespace(uri="sip:bob@192.0.2.9"))
    acct.answered(INFO, ctx, branch, parse_message(OK))


def _kinds(q: RecordQueue) -> list[str]:
    return [dict(a)["Acct-Status-Type"] for _, _, a in q.pending()]


@pytest.fixture
def queue(tmp_path):
    return RecordQueue(str(tmp_path / "q.sqlite"))


def test_answer_bye_and_failure_give_start_stop_failed(queue):
    acct = Accounting(queue, _Client())  # not started: every event committed at once, none sent
    _answer(acct)
    start = dict(queue.pending()[0][2])
    assert (start["Source-IP"], start["Source-Port"], start["User-Agent"]) == ("192.0.2.7", "5062", "phone/1")
    assert start["Sip-Translated-Request-URI"] == "sip:bob@192.0.2.9"
    assert start["SIP-Proxy-IP"] == "198.51.100.1" and start["NAS-Port"] == 5060
    acct.ended(parse_message(BYE), {"reason": "bye", "streams": [{"codec": "PCMA", "media_type": "audio"}]})
    stop = dict(queue.pending()[1][2])
    assert (stop["MSP-Disconnect-Party"], stop["MSP-Disconnect-Reason"]) == ("callee", "Normal call clearing")
    assert stop["Sip-User-Agents"] == "phone/1+pbx/2" and stop["Media-Codecs"] == "PCMA"
    acct.ended(parse_message(BYE))  # the same BYE again (or from the other side): no second Stop
    acct.failed(parse_message(INVITE.replace(b"call-1", b"call-2")), INBOUND,
                parse_message(BUSY.replace(b"call-1", b"call-2")), "alice@example.com", "bob@example.com",
                target="sip:bob@192.0.2.9")
    assert _kinds(queue) == ["Start", "Stop", "Failed"]
    failed = dict(queue.pending()[2][2])
    assert failed["Sip-Response-Code"] == 486 and failed["Sip-To-Tag"] == "busy"
    assert [r["status"] for _, r in queue.pending_rows()] == [200, 486]


def test_events_are_committed_in_groups_and_at_stop(queue, monkeypatch):
    acct = Accounting(queue, _Client(), drain=False)
    acct.start()
    _answer(acct)
    assert queue.counts()["records"] == 0  # not committed yet
    gevent.sleep(service.FLUSH_INTERVAL * 3)
    assert queue.counts() == {"calls": 1, "records": 1, "rows": 0}
    acct.ended(parse_message(BYE))
    acct.stop()  # commits what is pending
    assert _kinds(queue) == ["Start", "Stop"]


def test_an_end_waits_for_the_start_another_worker_commits_later(tmp_path, monkeypatch):
    monkeypatch.setattr(service, "END_RETRY", 0.05)
    path = str(tmp_path / "q.sqlite")
    worker0, worker1 = Accounting(RecordQueue(path), _Client(), drain=False), \
        Accounting(RecordQueue(path), _Client(), drain=False)
    worker1.start()
    worker1.ended(parse_message(BYE))  # the BYE reaches worker 1 before worker 0 committed the 2xx
    gevent.sleep(0.15)
    _answer(worker0)
    gevent.sleep(0.3)
    assert _kinds(worker0.queue) == ["Start", "Stop"]
    worker1.stop()


def test_an_end_of_an_unknown_call_is_given_up(queue, monkeypatch):
    monkeypatch.setattr(service, "END_WAIT", 0.1)
    monkeypatch.setattr(service, "END_RETRY", 0.02)
    acct = Accounting(queue, None)
    acct.start()
    acct.ended(parse_message(BYE))
    gevent.sleep(0.4)
    assert acct._pending == [] and queue.counts()["records"] == 0
    acct.stop()


def test_a_rated_call_has_its_price_in_the_accounting_row(queue, monkeypatch):
    """A PSTN call carries its rating (routing's): the Stop's row holds what it cost, the
    amount the monthly quota adds up and getCallStatistics reports."""
    from decimal import Decimal

    from ngnpro.models.tariff import Rate
    from sipproxy.dialog.prepaid import encode_tariff

    clock = [1_000_000.0]
    monkeypatch.setattr(service.time, "time", lambda: clock[0])
    acct = Accounting(queue, None)
    req = parse_message(INVITE)
    rate = Rate(prefix="31", price_per_minute=Decimal("1.20"), connect_fee=Decimal("0.10"), increment=60)
    ctx = SimpleNamespace(request=req, inbound=INBOUND, caller="alice@example.com", billing_party="",
                          tariff=encode_tariff(rate, "+31201234567"))
    acct.answered(INFO, ctx, SimpleNamespace(request=SimpleNamespace(uri="sip:0031201234567@gw")),
                  parse_message(OK))
    clock[0] += 61  # two started minutes
    acct.ended(parse_message(BYE))
    (_, row), = queue.pending_rows()
    assert row["duration"] == 61 and Decimal(row["price"]) == Decimal("2.50")


class _Client:
    """A RADIUS client that acknowledges every record (what it was given, in order)."""

    def __init__(self) -> None:
        self.got: list[dict] = []

    def send(self, attributes, created=None):  # noqa: ANN001, ANN201
        self.got.append(dict(attributes))
        return "127.0.0.1:1813"


def test_worker_0_announces_accounting_on_at_start_and_off_at_stop(queue):
    """Worker 0 (the one sending) queues Accounting-On as it starts and Accounting-Off
    after the last call's Stop as it stops, and sends them; the On and the Off of a run
    share their Acct-Session-Id, a later run has another."""
    client = _Client()
    acct = Accounting(queue, client, nas_identifier="msp-1", nas_ip="198.51.100.1", poll_interval=0.05)
    acct.start()
    gevent.sleep(0.2)
    _answer(acct)
    acct.ended(parse_message(BYE))
    gevent.sleep(0.2)
    acct.stop()
    kinds = [r["Acct-Status-Type"] for r in client.got]
    assert kinds == ["Accounting-On", "Start", "Stop", "Accounting-Off"]
    on, off = client.got[0], client.got[-1]
    assert on["Acct-Session-Id"] == off["Acct-Session-Id"] == acct.run_id
    assert on["NAS-Identifier"] == "msp-1" and on["NAS-IP-Address"] == "198.51.100.1"
    assert queue.counts()["records"] == 0
    again = Accounting(queue, client, nas_identifier="msp-1")
    again.start()
    gevent.sleep(0.1)
    again.stop()
    assert client.got[-2]["Acct-Status-Type"] == "Accounting-On"
    assert client.got[-2]["Acct-Session-Id"] != on["Acct-Session-Id"]


def test_the_other_workers_and_accounting_without_radius_announce_nothing(queue):
    other = Accounting(queue, _Client(), drain=False)  # worker 1
    other.start()
    gevent.sleep(0.1)
    other.stop()
    no_radius = Accounting(queue, None)  # the accounting table only
    no_radius.start()
    gevent.sleep(0.1)
    no_radius.stop()
    assert queue.counts()["records"] == 0


def test_an_off_no_server_takes_stays_queued_for_the_next_start(queue, monkeypatch):
    """No server answers at stop: the Off waits in the queue file (the stop gives up
    after STOP_SEND, however long the client would wait) and leaves first after the next
    start, before that run's On."""
    import time

    monkeypatch.setattr(service, "STOP_SEND", 0.2)

    class _Down(_Client):
        def send(self, attributes, created=None):  # noqa: ANN001, ANN201
            gevent.sleep(5)  # servers that time out one after the other
            return None

    down = Accounting(queue, _Down())
    down.start()
    gevent.sleep(0.1)
    t0 = time.monotonic()
    down.stop()
    assert time.monotonic() - t0 < 1.0
    assert _kinds(queue) == ["Accounting-On", "Accounting-Off"]
    client = _Client()
    up = Accounting(RecordQueue(queue.path), client, poll_interval=0.05)
    up.start()
    gevent.sleep(0.2)
    assert [r["Acct-Status-Type"] for r in client.got] == ["Accounting-On", "Accounting-Off", "Accounting-On"]
    assert client.got[0]["Acct-Session-Id"] == client.got[1]["Acct-Session-Id"] != client.got[2]["Acct-Session-Id"]
    up.stop()


def test_without_radius_only_the_table_rows_are_queued(queue):
    """``[radius] server`` unset, ``[sipproxy] accounting`` on: the rows of the accounting
    table, and no RADIUS record that nobody would ever send (the queue would only grow)."""
    acct = Accounting(queue, None)
    _answer(acct)
    acct.ended(parse_message(BYE))
    acct.failed(parse_message(INVITE.replace(b"call-1", b"call-2")), INBOUND,
                parse_message(BUSY.replace(b"call-1", b"call-2")), "alice@example.com", "bob@example.com")
    assert queue.pending() == []
    assert [r["status"] for _, r in queue.pending_rows()] == [200, 486]
