"""A call's dialog events without a database: the early row's bound, the call limit's tally
of unflushed writes, the writer's grouping (each call's order kept), and what the proxy
tells its dialog store at each moment of a call (in process, no sockets)."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from sipproxy.dialog.batching import KINDS, call_of, groups
from sipproxy.dialog.pending import Unflushed
from sipproxy.dialog.state import EARLY_MARGIN, DialogInfo, early_bound
from sipproxy.proxy.proxy import TIMER_C, Proxy
from sipproxy.routing.pipeline import Router, Target, Targets
from sipproxy.runtime.edge import Core
from sipproxy.sip.addressing import Inbound, Peer
from sipproxy.sip.parser import parse_message
from sipproxy.sip.uri import parse_uri

# -- the early row's bound, the tally ------------------------------------------------------


def test_an_early_row_is_stale_after_its_ring_time_and_the_cancels_lifetime():
    assert EARLY_MARGIN == 32.0  # 64*T1
    assert early_bound(TIMER_C) == 212.0
    assert early_bound(30) == 62.0
    assert early_bound(-5) == EARLY_MARGIN


def test_the_tally_counts_queued_early_rows_minus_queued_removals_per_caller():
    tally = Unflushed()
    tally.add("Alice@Example.com")
    tally.add("alice@example.com")
    tally.add("bob@example.com", -1)  # a failed call whose row is written: its removal queued
    assert (tally.count("alice@example.com"), tally.count("BOB@example.com"), tally.count("carol@x")) == (2, -1, 0)
    tally.add("alice@example.com", -2)  # both rows written
    tally.add("bob@example.com")  # the removal applied
    assert tally.count("alice@example.com") == 0 and len(tally) == 0  # nothing kept for nobody


# -- the writer's groups ------------------------------------------------------------------


def _event(kind: str, call: str, n: int) -> tuple[str, object]:
    info = DialogInfo(call_id=call, from_tag="f", to_tag="", caller="a@x", callee="b@x", caller_cseq=n)
    if kind == "early":
        return kind, (info, 60.0)
    if kind == "confirmed":
        return kind, info
    return kind, (call, "f", n, "")


def _flatten(out: list[tuple[str, list[object]]]) -> list[tuple[str, object]]:
    return [(kind, data) for kind, group in out for data in group]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KINDS), st.sampled_from("abcd")), max_size=40))
def test_grouping_keeps_every_calls_events_in_order(events):
    items = [_event(kind, call, n) for n, (kind, call) in enumerate(events)]
    out = groups(items)
    flat = _flatten(out)
    assert sorted(map(id, (d for _, d in flat))) == sorted(map(id, (d for _, d in items)))  # each once
    for call in "abcd":
        assert [d for k, d in flat if call_of(k, d) == call] == [d for k, d in items if call_of(k, d) == call]
    assert all(group for _, group in out)


def test_interleaved_calls_are_one_statement_per_kind():
    """Live traffic: calls at every stage in one batch -- a group per kind, not per event."""
    items = []
    for n in range(50):  # call n starts, n-3 is answered, n-6 hangs up, n-7's BYE is answered
        items.append(_event("early", f"c{n}", n))
        for lag, kind in ((3, "confirmed"), (6, "ended"), (7, "removed")):
            if n >= lag:
                items.append(_event(kind, f"c{n - lag}", n))
    assert [kind for kind, _ in groups(items)] == ["early", "confirmed", "ended", "removed"]


def test_an_invite_retried_with_the_same_call_id_after_a_failure_is_not_overtaken():
    """early, its removal (401 from downstream), the retry's early row: three segments'
    worth of order, so the retry's row is inserted after the first one's removal."""
    items = [_event("early", "c", 1), _event("failed", "c", 1), _event("early", "c", 2),
             _event("early", "other", 1)]
    assert [(kind, len(group)) for kind, group in groups(items)] == [
        ("early", 1), ("failed", 1), ("early", 2)]
    items = [_event("ended", "c", 1), _event("removed", "c", 1), _event("ended", "c", 2)]
    assert [kind for kind, _ in groups(items)] == ["ended", "removed", "ended"]


# -- what the proxy tells the store -------------------------------------------------------


class Recorder:
    """A dialog store that writes down what it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple]] = []

    def __getattr__(self, name: str):  # noqa: ANN204
        if name in ("early", "ringing", "failed", "answered", "confirmed", "ended", "removed", "refreshed"):
            return lambda *args, **kw: self.events.append((name, args))
        raise AttributeError(name)

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


CALLER = Peer("udp", "192.0.2.1", 5060)
PHONE = Peer("udp", "192.0.2.50", 5062)
OTHER = Peer("udp", "192.0.2.51", 5062)


class _Directory:
    def is_local_domain(self, domain: str) -> bool:
        return domain.lower() == "example.com"


def _proxy(ring: float | None = 30.0, after=None):  # noqa: ANN001, ANN202
    core = Core(["udp:127.0.0.1:5070"])
    sent: list[tuple[bytes, Peer]] = []
    core.transports.send = lambda data, dest, connection=None, listener=None: sent.append((data, dest)) or True
    router = SimpleNamespace(
        preprocess_request=lambda call: None, trusted_source=lambda ip: (None, False), is_local=lambda uri: True,
        route=lambda call: Targets([Target(parse_uri("sip:bob@192.0.2.50:5062"), PHONE, ())], "bob@example.com",
                                   ring, after=after))
    recorder = Recorder()
    proxy = Proxy(core, _Directory(), SimpleNamespace(authenticator=None), recorder, router)
    core.tu = proxy
    return core, sent, recorder, proxy


INVITE = (b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKearly1\r\n"
          b"From: <sip:carol@elsewhere.example>;tag=c1\r\nTo: <sip:bob@example.com>\r\n"
          b"Call-ID: early@x\r\nCSeq: 7 INVITE\r\nContact: <sip:carol@192.0.2.1>\r\n"
          b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


def _answer(request: bytes, status: int, reason: str, to_tag: str = "b1") -> bytes:
    fwd = parse_message(request)
    vias = "".join(f"Via: {v}\r\n" for v in fwd.headers.getall("via"))
    rr = "".join(f"Record-Route: {v}\r\n" for v in fwd.headers.getall("record-route"))
    return (f"SIP/2.0 {status} {reason}\r\n{vias}{rr}From: {fwd.headers.get('from')}\r\n"
            f"To: {fwd.headers.get('to')};tag={to_tag}\r\nCall-ID: {fwd.call_id}\r\nCSeq: {fwd.headers.get('cseq')}\r\n"
            f"Contact: <sip:bob@{PHONE.host}:{PHONE.port}>\r\nContent-Length: 0\r\n\r\n").encode()


def _forwarded(sent: list[tuple[bytes, Peer]], to: Peer = PHONE) -> bytes:
    return [d for d, dest in sent if d.startswith(b"INVITE ") and dest == to][-1]


def _finals(sent: list[tuple[bytes, Peer]]) -> list[int]:
    """The final answers to the INVITE the caller got."""
    answers = [parse_message(d) for d, to in sent if to == CALLER and d.startswith(b"SIP/")]
    return [r.status for r in answers if r.status >= 200 and r.cseq[1] == "INVITE"]


def test_a_forwarded_invite_writes_the_early_row_and_its_answer_confirms_it():
    core, sent, recorder, _ = _proxy()
    lst = core.transports.listeners[0]
    try:
        core.on_inbound(Inbound(INVITE, CALLER, lst))
        (kind, (info, bound)), = recorder.events
        assert kind == "early" and bound == early_bound(30.0)
        assert (info.call_id, info.from_tag, info.to_tag, info.caller, info.callee, info.caller_cseq) == (
            "early@x", "c1", "", "carol@elsewhere.example", "bob@example.com", 7)
        assert info.caller_contact == "<sip:carol@192.0.2.1>" and info.caller_source == str(CALLER)
        core.on_inbound(Inbound(_answer(_forwarded(sent), 180, "Ringing"), PHONE, lst))
        core.on_inbound(Inbound(_answer(_forwarded(sent), 200, "OK"), PHONE, lst))
        assert recorder.kinds() == ["early", "confirmed"]  # one row: no failure, no second early
        assert recorder.events[1][1][0].to_tag == "b1"
    finally:
        core.stop()


def test_a_failure_a_cancel_and_timer_c_remove_the_early_row():
    for how in ("486", "cancel", "timer c"):
        core, sent, recorder, proxy = _proxy()
        lst = core.transports.listeners[0]
        try:
            core.on_inbound(Inbound(INVITE, CALLER, lst))
            forwarded = _forwarded(sent)
            if how == "486":
                core.on_inbound(Inbound(_answer(forwarded, 486, "Busy Here"), PHONE, lst))
            else:
                core.on_inbound(Inbound(_answer(forwarded, 180, "Ringing"), PHONE, lst))
                if how == "cancel":
                    cancel = INVITE.replace(b"INVITE sip:", b"CANCEL sip:", 1).replace(b"7 INVITE", b"7 CANCEL")
                    core.on_inbound(Inbound(cancel, CALLER, lst))
                else:
                    (ctx,) = [t.user_data for t in core.layer.server.values() if t.user_data is not None]
                    proxy.responses.timer_c(ctx)
                assert any(d.startswith(b"CANCEL ") and to == PHONE for d, to in sent)
                core.on_inbound(Inbound(_answer(forwarded, 487, "Request Terminated"), PHONE, lst))
            assert recorder.kinds() == ["early", "failed"], how
            assert recorder.events[1][1] == ("early@x", "c1", 7, "carol@elsewhere.example")
            assert _finals(sent) == [{"486": 486, "cancel": 487, "timer c": 408}[how]]
        finally:
            core.stop()


def test_a_call_diverted_after_the_fork_rings_on_under_the_same_row():
    diverted = Targets([Target(parse_uri("sip:dave@192.0.2.51:5062"), OTHER, ())], "dave@example.com", 20.0)
    core, sent, recorder, _ = _proxy(after=lambda statuses, expired: diverted)
    lst = core.transports.listeners[0]
    try:
        core.on_inbound(Inbound(INVITE, CALLER, lst))
        core.on_inbound(Inbound(_answer(_forwarded(sent), 486, "Busy Here"), PHONE, lst))
        assert recorder.kinds() == ["early", "ringing"]  # not failed: the call goes on elsewhere
        assert recorder.events[1][1] == ("early@x", "c1", early_bound(20.0))
        core.on_inbound(Inbound(_answer(_forwarded(sent, OTHER), 480, "Temporarily Unavailable"), OTHER, lst))
        assert recorder.kinds() == ["early", "ringing", "failed"]
    finally:
        core.stop()


def test_an_answer_without_a_transaction_confirms_or_removes_a_previous_process_early_row():
    """A proxy restarted while the call rang: the callee's final answer comes to it (the
    Via names the address) without a transaction.  A 2xx is relayed to the caller and
    confirms the row; a failure removes it (no tally here: the row is not this process's)."""
    core, sent, recorder, _ = _proxy()
    lst = core.transports.listeners[0]
    try:
        core.on_inbound(Inbound(INVITE, CALLER, lst))
        forwarded = _forwarded(sent)
    finally:
        core.stop()
    restarted, sent, recorder, _ = _proxy()
    lst = restarted.transports.listeners[0]
    try:
        restarted.on_inbound(Inbound(_answer(forwarded, 200, "OK", to_tag="b9"), PHONE, lst))
        ((kind, args),) = recorder.events
        assert kind == "answered"
        call_id, from_tag, cseq, to_tag, contact, route_set, source, interval = args
        assert (call_id, from_tag, cseq, to_tag, contact, source, interval) == (
            "early@x", "c1", 7, "b9", f"<sip:bob@{PHONE.host}:{PHONE.port}>", str(PHONE), 0)
        assert route_set.startswith("<sip:127.0.0.1:5070")
        assert [to for d, to in sent if d.startswith(b"SIP/2.0 200")] == [CALLER]  # relayed along the Via
        restarted.on_inbound(Inbound(_answer(forwarded, 486, "Busy Here"), PHONE, lst))
        assert recorder.events[-1] == ("failed", ("early@x", "c1", 7))
    finally:
        restarted.stop()


def test_the_call_limit_adds_the_unflushed_writes_to_the_rows():
    directory = SimpleNamespace(active_calls=lambda caller: 2)
    router = Router(directory, None, None)
    router.in_progress = lambda caller: {"a@x": 1, "b@x": -1, "c@x": -5}.get(caller, 0)
    assert [router.active_calls(c) for c in ("a@x", "b@x", "c@x", "d@x")] == [3, 1, 0, 2]
