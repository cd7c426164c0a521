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
    with sessions() as s:
        assert s.query(Dialog).count() == 0
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
