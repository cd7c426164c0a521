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
    """Batches insert without looking first; one that meets an existing dialog is redone as
    replace + insert, still as one transaction with the batch's other writes."""
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
