"""The dialogs table as the proxy writes it (queued, bulk) on every backend."""

from __future__ import annotations

import gevent

from ngnpro.models import Dialog
from ngnpro.models.database import open_database
from sipproxy.dialog.state import DialogInfo
from sipproxy.dialog.store import DialogStore


def _info(call_id: str, from_tag: str = "ft", to_tag: str = "tt") -> DialogInfo:
    return DialogInfo(call_id=call_id, from_tag=from_tag, to_tag=to_tag, caller="alice@example.com",
                      callee="bob@example.com", route_set="<sip:127.0.0.1;lr>", proxy="udp:127.0.0.1:5060")


def test_confirmed_then_ended_either_side(db_url):
    engine, sessions = open_database(db_url)
    store = DialogStore(sessions)
    store.confirmed(_info("c1"))
    store.confirmed(_info("c1"))  # a 2xx retransmission: still one row
    store.confirmed(_info("c2"))
    rows = store.find("c1")
    assert len(rows) == 1 and rows[0].state == "confirmed" and rows[0].to_tag == "tt"
    store.ended("c1", "tt", "ft")  # BYE from the callee: its From tag is our To tag
    store.ended("c2", "ft")
    store.ended("nope", "x")
    with sessions() as s:  # the BYEs are not answered yet: the rows stay, terminated
        assert {(r.call_id, r.state, r.end_time is not None) for r in s.query(Dialog)} == {
            ("c1", "terminated", True), ("c2", "terminated", True)}
    assert store.find("c1") == []  # nothing left to end
    store.removed("c1", "tt", "ft")  # the BYE was answered
    with sessions() as s:
        assert [r.call_id for r in s.query(Dialog)] == ["c2"]
    store.removed("c2", "ft")
    with sessions() as s:
        assert s.query(Dialog).count() == 0
    engine.dispose()


def test_a_dialog_is_removed_only_once_ended():
    """A BYE's answer handled before the BYE itself was written (another worker) removes
    nothing: the confirmed row is not lost before its end is known."""
    engine, sessions = open_database("sqlite://")
    store = DialogStore(sessions)
    store.confirmed(_info("c1"))
    store.removed("c1", "ft", "tt")
    assert [r.state for r in store.find("c1")] == ["confirmed"]
    engine.dispose()


def test_target_refresh_updates_the_remote_targets(db_url):
    engine, sessions = open_database(db_url)
    store = DialogStore(sessions)
    store.confirmed(_info("c1"))
    # the caller's re-INVITE (its From tag) moved it; the callee answered from a new address
    store.refreshed("c1", "ft", "<sip:alice@192.0.2.7:5070>", "<sip:bob@192.0.2.8:5080>")
    row = store.find("c1")[0]
    assert (row.caller_contact, row.callee_contact) == ("<sip:alice@192.0.2.7:5070>", "<sip:bob@192.0.2.8:5080>")
    # the callee's UPDATE (its tag is the dialog's To tag); a 2xx without Contact keeps the caller's
    store.refreshed("c1", "tt", "<sip:bob@192.0.2.9>", "")
    row = store.find("c1")[0]
    assert (row.caller_contact, row.callee_contact) == ("<sip:alice@192.0.2.7:5070>", "<sip:bob@192.0.2.9>")
    engine.dispose()


def test_queued_writes_are_applied_in_order(db_url):
    engine, sessions = open_database(db_url)
    store = DialogStore(sessions, flush_interval=0.01)
    store.start()
    try:
        for n in range(20):
            store.confirmed(_info(f"call{n}"))
        for n in range(0, 20, 2):
            store.ended(f"call{n}", "ft", "tt")
            store.removed(f"call{n}", "ft", "tt")
        gevent.sleep(0.3)
        with sessions() as s:
            left = sorted(r.call_id for r in s.query(Dialog))
        assert left == sorted(f"call{n}" for n in range(1, 20, 2))
    finally:
        store.stop()
        engine.dispose()


def test_a_dialog_written_again_is_replaced_within_a_batch(db_url):
    """An answer updates the call's row where there is one (its early row, or a dialog
    written before) and inserts it where there is none, in one transaction with the
    batch's other writes."""
    engine, sessions = open_database(db_url)
    store = DialogStore(sessions, flush_interval=0.01)
    store.start()
    try:
        store.confirmed(_info("c1", to_tag="old"))
        store.flush()
        store.confirmed(_info("c1", to_tag="new"))
        store.confirmed(_info("c2"))
        store.ended("c3", "ft", "tt")
        store.flush()
        with sessions() as s:
            rows = {r.call_id: r.to_tag for r in s.query(Dialog)}
        assert rows == {"c1": "new", "c2": "tt"}
    finally:
        store.stop()
        engine.dispose()


def test_a_terminated_row_whose_bye_is_never_answered_goes_after_32_s(db_url):
    """Its proxy stopped between the BYE and its answer: the cut-off sweep drops the row
    64*T1 after its end, and leaves a row that ended a moment ago."""
    import datetime as dt

    from sqlalchemy import update

    engine, sessions = open_database(db_url)
    store = DialogStore(sessions)
    for call_id in ("old", "new"):
        store.confirmed(_info(call_id))
        store.ended(call_id, "ft", "tt")
    with sessions.begin() as s:
        s.execute(update(Dialog).where(Dialog.call_id == "old").values(
            end_time=dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=40)))
    assert store.due() == []
    with sessions() as s:
        assert [r.call_id for r in s.query(Dialog)] == ["new"]
    engine.dispose()


# -- early rows (a call that rings) ---------------------------------------------------------


def _early(call_id: str, cseq: int = 1, caller: str = "alice@example.com") -> DialogInfo:
    return DialogInfo(call_id=call_id, from_tag="ft", to_tag="", caller=caller, callee="bob@example.com",
                      caller_contact="<sip:alice@192.0.2.1>", caller_cseq=cseq, caller_source="udp:192.0.2.1:5060",
                      proxy="udp:127.0.0.1:5060")


def _rows(sessions) -> dict[str, tuple]:
    with sessions() as s:
        return {r.call_id: (r.state, r.to_tag, r.caller_cseq) for r in s.query(Dialog)}


def test_a_ringing_call_is_early_until_its_answer_confirms_the_same_row(db_url):
    import datetime as dt

    from sipproxy.directory.store import Directory

    engine, sessions = open_database(db_url)
    store = DialogStore(sessions)
    directory = Directory(sessions)
    store.early(_early("c1", 7), 62.0)
    with sessions() as s:
        (row,) = s.query(Dialog).all()
        first_id = row.id
        assert (row.state, row.to_tag, row.caller_cseq, row.caller_contact, row.connect_time) == (
            "early", "", 7, "<sip:alice@192.0.2.1>", None)
        until = (row.deadline - row.start_time).total_seconds()
        assert 61.5 <= until <= 62.5, until  # stale after the ring time and a margin
    assert store.find("c1") == []  # ringing: no dialog to end yet
    assert directory.active_calls("alice@example.com") == 1  # counted while it rings
    store.confirmed(_info("c1", to_tag="tt"))
    with sessions() as s:
        (row,) = s.query(Dialog).all()
        assert (row.id, row.state, row.to_tag, row.callee_contact, row.deadline) == (first_id, "confirmed", "tt", "", None)
        assert row.connect_time is not None and row.connect_time >= row.start_time - dt.timedelta(seconds=1)
    assert [r.to_tag for r in store.find("c1")] == ["tt"]
    assert directory.active_calls("alice@example.com") == 1
    store.ended("c1", "ft", "tt")
    assert directory.active_calls("alice@example.com") == 0  # terminated rows do not count
    engine.dispose()


def test_a_failed_call_loses_its_early_row_and_only_that(db_url):
    engine, sessions = open_database(db_url)
    store = DialogStore(sessions)
    for call_id in ("busy", "crossed", "retried"):
        store.early(_early(call_id), 62.0)
    store.failed("busy", "ft", 1, "alice@example.com")
    store.confirmed(_info("crossed", to_tag="tt"))  # a 2xx that crossed the CANCEL
    store.failed("crossed", "ft", 1, "alice@example.com")
    store.failed("retried", "ft", 3)  # the answer to another INVITE (CSeq) of the same Call-ID
    assert _rows(sessions) == {"crossed": ("confirmed", "tt", 0), "retried": ("early", "", 1)}
    store.confirmed(_info("late"))  # a 2xx after the failure (no row left): written all the same
    assert _rows(sessions)["late"] == ("confirmed", "tt", 0)
    engine.dispose()


def test_an_early_row_never_overwrites_a_row_of_its_call(db_url):
    """A spiral (the INVITE back through this proxy) and a prepaid call confirmed at once
    before its queued early row landed: the early write leaves the row there alone."""
    engine, sessions = open_database(db_url)
    store = DialogStore(sessions)
    store.early(_early("spiral", 1), 62.0)
    store.early(_early("spiral", 1, caller="someone@else"), 62.0)
    store.confirmed(_info("answered"))
    store.early(_early("answered"), 62.0)
    assert _rows(sessions) == {"spiral": ("early", "", 1), "answered": ("confirmed", "tt", 0)}
    with sessions() as s:
        assert s.query(Dialog).filter_by(call_id="spiral").one().caller == "alice@example.com"
    engine.dispose()


def test_a_restarted_proxy_confirms_an_early_row_from_a_2xx_without_transaction(db_url):
    engine, sessions = open_database(db_url)
    DialogStore(sessions).early(_early("c1", 5), 62.0)  # the process that died
    restarted = DialogStore(sessions)
    restarted.answered("c1", "ft", 4, "tt", "<sip:bob@x>", "<sip:p;lr>", "udp:192.0.2.9:5060")  # other CSeq
    restarted.answered("nope", "ft", 5, "tt", "<sip:bob@x>", "<sip:p;lr>", "udp:192.0.2.9:5060")
    assert _rows(sessions) == {"c1": ("early", "", 5)}
    restarted.answered("c1", "ft", 5, "tt", "<sip:bob@x>", "<sip:p;lr>", "udp:192.0.2.9:5060", 1800)
    (row,) = restarted.find("c1")
    assert (row.state, row.to_tag, row.callee_contact, row.route_set, row.callee_source, row.session_interval) == (
        "confirmed", "tt", "<sip:bob@x>", "<sip:p;lr>", "udp:192.0.2.9:5060", 1800)
    assert row.caller_contact == "<sip:alice@192.0.2.1>" and row.connect_time is not None and row.expires is not None
    restarted.ended("c1", "tt", "ft")
    restarted.removed("c1", "tt", "ft")
    assert _rows(sessions) == {}
    engine.dispose()


def test_the_sweep_drops_early_rows_past_their_bound(db_url):
    """Their proxy died while they rang: an early row goes once its deadline (ring time and
    margin) passed; one still ringing stays; a diversion moves the bound."""
    import datetime as dt

    from sqlalchemy import update

    engine, sessions = open_database(db_url)
    store = DialogStore(sessions)
    for call_id in ("dead", "ringing", "diverted", "handmade"):
        store.early(_early(call_id), 62.0)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with sessions.begin() as s:
        s.execute(update(Dialog).where(Dialog.call_id.in_(["dead", "diverted"])).values(
            deadline=now - dt.timedelta(seconds=1)))
        s.execute(update(Dialog).where(Dialog.call_id == "handmade").values(  # written without a bound
            deadline=None, start_time=now - dt.timedelta(hours=2)))
    store.ringing("diverted", "ft", 40.0)
    assert store.sweep() == 2
    assert sorted(_rows(sessions)) == ["diverted", "ringing"]
    store.ringing("ringing", "ft", -10.0)  # (a bound already over)
    assert store.due() == [] and sorted(_rows(sessions)) == ["diverted"]  # due() sweeps too
    engine.dispose()


def test_queued_early_rows_count_until_they_land_and_then_only_as_rows(db_url):
    """The call limit counts rows + this process's unflushed writes: each call once, before
    and after its batch."""
    from sipproxy.directory.store import Directory

    engine, sessions = open_database(db_url)
    store = DialogStore(sessions, flush_interval=60)  # the writer never flushes by itself here
    directory = Directory(sessions)

    def counted() -> tuple[int, int]:
        return directory.active_calls("alice@example.com"), store.unflushed("alice@example.com")

    store.start()
    try:
        store.early(_early("c1"), 62.0)
        store.early(_early("c2"), 62.0)
        assert counted() == (0, 2)
        store.flush()
        assert counted() == (2, 0)
        store.failed("c1", "ft", 1, "alice@example.com")  # c1 failed: its removal queued
        store.early(_early("c3"), 62.0)
        store.failed("c3", "ft", 1, "alice@example.com")  # c3 failed before its row was written
        assert counted() == (2, -1)
        store.flush()
        assert counted() == (1, 0)
    finally:
        store.stop()
        engine.dispose()


def test_an_invite_retried_with_the_same_call_id_in_one_batch_keeps_its_row(db_url):
    """401 from downstream, the caller retries at once (same Call-ID and From tag, new
    CSeq): one batch holds the first early row, its removal and the retry's early row."""
    engine, sessions = open_database(db_url)
    store = DialogStore(sessions, flush_interval=60)
    store.start()
    try:
        store.early(_early("c1", 1), 62.0)
        store.failed("c1", "ft", 1, "alice@example.com")
        store.early(_early("c1", 2), 62.0)
        for n in range(5):  # other calls in between, at every stage
            store.early(_early(f"o{n}"), 62.0)
            store.confirmed(_info(f"o{n}"))
        store.ended("o0", "ft", "tt")
        store.flush()
        assert _rows(sessions)["c1"] == ("early", "", 2)
        assert sorted(c for c, (state, *_) in _rows(sessions).items() if state == "confirmed") == [
            "o1", "o2", "o3", "o4"]
        assert store.unflushed("alice@example.com") == 0
    finally:
        store.stop()
        engine.dispose()
