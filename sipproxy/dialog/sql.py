"""The statements of the ``dialogs`` table the dialog store runs (:mod:`.store`).

Core statements, compiled once per dialect by the store (``ngnpro.models.Compiled``:
parameters picked out without processors, the datetimes converted once per batch) and run
as bulk ``executemany``.  The states are written into the SQL as constants (``Compiled``
binds only the named parameters).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, literal_column, null, or_, select, update
from sqlalchemy.engine import Dialect

from ngnpro.models import Dialog

T = Dialog.__table__
EARLY, CONFIRMED, TERMINATED = (literal_column(f"'{state}'") for state in ("early", "confirmed", "terminated"))

INSERT = insert(T)
INSERT_KEYS = tuple(c.key for c in T.c if c.key != "id")
#: the answer: the call's row (its early row, or one written before) gets every column
CONFIRM = update(T).where(T.c.call_id == bindparam("c"), T.c.from_tag == bindparam("f"))
CONFIRM_KEYS = tuple(k for k in INSERT_KEYS if k not in ("call_id", "from_tag"))

#: a call's early row: its key, and the INVITE's CSeq (a caller that retries with the same
#: Call-ID and From tag sends a new CSeq: an answer to the old INVITE must not touch it)
KEY = and_(T.c.call_id == bindparam("c"), T.c.from_tag == bindparam("f"), T.c.caller_cseq == bindparam("q"))
#: a final non-2xx answer (or CANCEL, Timer C): the call that rang is gone -- only while
#: early (a 2xx that crossed the failure has confirmed it: that row stays)
FAILED = delete(T).where(KEY, T.c.state == EARLY)
#: the call is forwarded again (a call diversion): it may ring for another ring time
RINGING = update(T).where(T.c.call_id == bindparam("c"), T.c.from_tag == bindparam("f"),
                          T.c.state == EARLY).values(deadline=bindparam("d"))
#: a 2xx that matched no transaction (this proxy restarted while the call rang) for a call
#: whose early row is here: confirmed with what the 2xx tells
ANSWERED = update(T).where(KEY, T.c.state == EARLY).values(
    state=CONFIRMED, to_tag=bindparam("t"), callee_contact=bindparam("cc"), route_set=bindparam("rs"),
    callee_source=bindparam("cs"), connect_time=bindparam("n"), deadline=bindparam("d"),
    session_interval=bindparam("i"), expires=bindparam("e"))
#: the payer of such a call, when it is prepaid (its deadlines are worked out again)
EARLY_PREPAID = select(T.c.billing_party).where(KEY, T.c.state == EARLY, T.c.tariff != "")

OF_CALL = and_(T.c.call_id == bindparam("c"),
               or_(T.c.from_tag == bindparam("a"), T.c.from_tag == bindparam("b"),
                   T.c.to_tag == bindparam("a"), T.c.to_tag == bindparam("b")))
#: a BYE: the call is over (the row stays until the BYE is answered)
ENDED = update(T).where(OF_CALL, T.c.state != TERMINATED).values(
    state=TERMINATED, end_time=bindparam("t"), deadline=null())
#: the BYE was answered (or timed out): the row goes
REMOVED = delete(T).where(OF_CALL, T.c.state == TERMINATED)
#: a target refresh (RFC 3261 12.2): a Contact becomes that party's remote target.  The
#: party is known by the refresh's sender tag: the caller's (the row's from_tag) or the
#: callee's (its to_tag); the sender's Contact is its own, the answer's the other party's.
TARGETS = [  # (statement, the Contact it writes: 2 the sender's, 3 the answer's)
    (update(T).where(T.c.call_id == bindparam("c"), T.c[tag] == bindparam("s"), T.c.state == CONFIRMED)
     .values({column: bindparam("sc")}), pick)
    for column, tag, pick in (("caller_contact", "from_tag", 2), ("callee_contact", "to_tag", 2),
                              ("callee_contact", "from_tag", 3), ("caller_contact", "to_tag", 3))
]
SESSION_REFRESH = update(T).where(
    T.c.call_id == bindparam("c"), or_(T.c.from_tag == bindparam("s"), T.c.to_tag == bindparam("s")),
    T.c.state == CONFIRMED).values(session_interval=bindparam("i"), expires=bindparam("e"))
PREPAID_OF = select(T.c.call_id).where(T.c.call_id.in_(bindparam("calls", expanding=True)),
                                       T.c.state == "confirmed", T.c.tariff != "")


def insert_new(dialect: Dialect) -> Any:
    """INSERT of an early row that leaves an existing row of the call alone: the call's
    confirmed row (a prepaid call is written at once at answer, maybe before its queued
    early row), or the early row of a request that spiralled back through this proxy."""
    name = dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(T).on_conflict_do_nothing()
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(T).on_conflict_do_nothing()
    if name in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        return mysql_insert(T).on_duplicate_key_update(id=T.c.id)  # a no-op on a duplicate
    return INSERT  # another database: a duplicate is an IntegrityError (the slow path)
