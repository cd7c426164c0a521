"""PresencePort (``urn:AGProjects:SoapSIMPLEProxy:Presence``, API.md 3.8): an account's own
presence, watchers and authorization policy, on the data the presence agent (sipproxy) and
the XCAP server use.

There is no ``auth`` header: every method names the account (``sipId``) and gives its SIP
password, checked against the stored HA1 (or the clear-text password where the operator
keeps it).  A wrong password, an unknown account or a malformed ``sipId`` is fault 9001
and nothing changes, so the port tells nobody which accounts exist.  A blocked account is
9002 after a good password, as the proxy answers it 403 ``Account Blocked``.

* ``setPresenceInformation`` publishes as a device of the account would: one
  ``presence_publications`` row (its entity tag starts ``presport-``, so the port finds
  its own publication among the devices'), replaced on the next call, lapsing after
  ``[ngnpro] presence_port_expires`` seconds.  A change on topic ``presence`` (key
  ``user@domain``) in the same transaction makes the agent notify the watchers.
* ``getPresenceInformation`` reads the composed state (devices and port alike).
* ``getPolicy``/``setPolicy`` read and write the ``pres-rules`` XCAP document ``index``,
  with a change on topic ``xcap`` as the XCAP server writes it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

from lxml import etree
from spyne import rpc
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ngnpro import presence_docs as docs
from ngnpro import sip_types as t
from ngnpro.models.changes import TOPIC_PRESENCE, TOPIC_XCAP, record_change
from ngnpro.models.presence import PresencePublication, PresenceSubscription
from ngnpro.models.sip import GROUP_BLOCKED, SipAccount, SipAccountGroup
from ngnpro.models.xcap import XcapDocument
from ngnpro.soap import NS_PRESENCE, NS_PRESENCE_TYPES, PortService, call_context
from ngnpro.soap.context import CallContext
from ngnpro.soap.faults import AUTH_FAILED, PERMISSION_DENIED, NGNProError
from ngnpro.soap.types import ComplexModel, StringArray, Unicode
from ngnpro.xcap.errors import XcapError
from ngnpro.xcap.store import change_key
from ngnpro.xcap.store import new_etag as new_xcap_etag
from ngnpro.xcap.usages import PIDF_MANIPULATION, PRES_RULES, usage
from ngnpro.xcap.xmlsafe import parser

#: the entity tags of PresencePort's publications start with this (no ``_`` or ``%``:
#: it is matched with LIKE)
ETAG_PREFIX = "presport-"
#: the most identities one list of ``setPolicy`` takes
MAX_IDENTITIES = 1000
#: the longest note (characters)
MAX_NOTE = 1024


def _struct(name: str, members: list[tuple[str, object]]) -> type:
    return type(name, (ComplexModel,), {"__namespace__": NS_PRESENCE_TYPES, "__type_name__": name,
                                        "_type_info": members})


#: the types as the stubs name them (API.md 4), in the port's own type namespace
PresenceSipId = _struct("SipId", [("username", Unicode), ("domain", Unicode)])
PresenceInformation = _struct("PresenceInformation", [("activity", Unicode), ("note", Unicode)])
PresencePolicy = _struct("PresencePolicy", [("allow", StringArray), ("block", StringArray)])


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _refused() -> NGNProError:
    return NGNProError(AUTH_FAILED, "Authentication failed: wrong SIP account or password")


def authenticate(session: Session, sip_id: Any, password: Any, for_update: bool = False) -> str:
    """The account ``user@domain`` named by ``sip_id`` when ``password`` is its SIP password.

    The HA1 (``md5(user:domain:password)``, realm = domain, as the proxy checks a phone)
    is compared when stored, else the clear-text ``password`` column; an account with
    neither cannot log in.  Every refusal is the same fault, and a missing account costs
    the same comparison as a wrong password.  ``for_update`` locks the account's row (on
    the server databases): two writes for one account then run one after the other, so
    two first ``setPresenceInformation`` calls cannot both insert a publication."""
    try:
        user, domain = t.sip_id(sip_id)
    except NGNProError:
        raise _refused() from None
    if not isinstance(password, str) or not password:
        raise _refused()
    stmt = select(SipAccount.id, SipAccount.ha1, SipAccount.password).where(
        SipAccount.username == user, SipAccount.domain == domain)
    row = session.execute(stmt.with_for_update() if for_update else stmt).first()
    ha1 = hashlib.md5(f"{user}:{domain}:{password}".encode()).hexdigest()  # noqa: S324 - the SIP digest
    if row is None:
        _same(ha1, "0" * 32)
        raise _refused()
    ok = _same(ha1, row.ha1.lower()) if row.ha1 else bool(row.password) and _same(password, row.password)
    if not ok:
        raise _refused()
    blocked = session.execute(select(SipAccountGroup.name).where(
        SipAccountGroup.account_id == row.id, SipAccountGroup.name == GROUP_BLOCKED)).first()
    if blocked is not None:
        raise NGNProError(PERMISSION_DENIED, f"SIP account {user}@{domain} is blocked")
    return f"{user}@{domain}"


def _own_publication(presentity: str) -> Any:
    return select(PresencePublication).where(PresencePublication.presentity == presentity,
                                             PresencePublication.etag.like(ETAG_PREFIX + "%"))


def set_presence(c: CallContext, presentity: str, information: Any) -> None:
    """Publish ``{activity, note}`` for ``presentity`` (API.md 3.8's activities, or any
    RFC 4480 activity name; fault 1040 otherwise)."""
    if information is None:
        raise t.invalid("information", "missing")
    activity = t.text(information.activity, "information.activity", 64).strip().lower()
    if activity and activity not in docs.ACTIVITIES:
        raise t.invalid("information.activity", f"{activity!r} is not one of open, idle, busy, available "
                                                "or an RFC 4480 activity")
    note = t.text(information.note, "information.note", MAX_NOTE).strip()
    now = time.time()
    expires = int(now) + int(c.config["ngnpro"]["presence_port_expires"])
    document = docs.pidf_document(presentity, activity, note, now)
    etag = ETAG_PREFIX + secrets.token_hex(10)
    session = c.session
    row = session.execute(_own_publication(presentity).with_for_update()).scalars().first()
    if row is None:
        session.add(PresencePublication(presentity=presentity, event="presence", etag=etag, document=document,
                                        content_type="application/pidf+xml", expires_at=expires))
    else:  # a new entity tag on every change, as RFC 3903 has the agent do
        row.etag, row.document, row.expires_at = etag, document, expires
    session.flush()
    record_change(session, TOPIC_PRESENCE, presentity)


def get_presence(session: Session, presentity: str) -> Any:
    """The composed state: the pidf-manipulation document first, then the live
    publications by last change, as the agent composes them for a watcher."""
    texts: list[str] = []
    manipulated = session.execute(select(XcapDocument.document).where(
        XcapDocument.auid == PIDF_MANIPULATION, XcapDocument.xui == presentity,
        XcapDocument.filename == "index")).scalar()
    if manipulated:
        texts.append(manipulated)
    texts += session.execute(select(PresencePublication.document).where(
        PresencePublication.presentity == presentity, PresencePublication.expires_at >= int(time.time()))
        .order_by(PresencePublication.updated, PresencePublication.id)).scalars().all()
    state = docs.composed_state(texts)
    return PresenceInformation(activity=state.activity, note=state.note)


def delete_presence(c: CallContext, presentity: str) -> None:
    """Remove the port's publication (not the devices'); the watchers are told."""
    removed = c.session.execute(delete(PresencePublication).where(
        PresencePublication.presentity == presentity, PresencePublication.etag.like(ETAG_PREFIX + "%")))
    if removed.rowcount:
        record_change(c.session, TOPIC_PRESENCE, presentity)


def watchers(session: Session, presentity: str) -> list[str]:
    """``"sip:watcher state"`` per watcher of ``presentity``'s presence (pending, active or
    terminated), one item per watcher and state, sorted."""
    rows = session.execute(select(PresenceSubscription.watcher, PresenceSubscription.state).where(
        PresenceSubscription.presentity == presentity, PresenceSubscription.event == "presence",
        PresenceSubscription.expires_at >= int(time.time()))).all()
    return sorted({f"sip:{w} {s}" for w, s in rows})


def _rules(session: Session, presentity: str, lock: bool = False) -> XcapDocument | None:
    stmt = select(XcapDocument).where(XcapDocument.auid == PRES_RULES, XcapDocument.xui == presentity,
                                      XcapDocument.filename == "index")
    return session.execute(stmt.with_for_update() if lock else stmt).scalars().first()


def get_policy(session: Session, presentity: str) -> Any:
    row = _rules(session, presentity)
    policy = docs.read_policy(row.document if row is not None else None)
    return PresencePolicy(allow=policy.allow, block=policy.block)


def _identities(values: Any, field: str) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    values = list(values)
    if len(values) > MAX_IDENTITIES:
        raise t.invalid(field, f"more than {MAX_IDENTITIES} identities")
    out: list[str] = []
    for i, value in enumerate(values):
        uri = docs.identity(t.text(value, f"{field}[{i}]"))
        if uri is None:
            raise t.invalid(f"{field}[{i}]", f"{value!r} is not a SIP URI or user@domain")
        if uri not in out:
            out.append(uri)
    return out


def set_policy(c: CallContext, presentity: str, policy: Any) -> None:
    """Replace the pres-rules document with an allow rule and a block rule; the XCAP
    usage's schema and constraints are checked as on an XCAP PUT."""
    if policy is None:
        raise t.invalid("policy", "missing")
    allow = _identities(policy.allow, "policy.allow")
    block = _identities(policy.block, "policy.block")
    both = sorted(set(allow) & set(block))
    if both:
        raise t.invalid("policy", f"{both[0]} is both allowed and blocked")
    document = docs.rules_document(docs.Policy(allow, block))
    rules_usage = usage(PRES_RULES)
    assert rules_usage is not None
    try:
        rules_usage.validate(etree.fromstring(document, parser()))
    except XcapError as exc:
        raise t.invalid("policy", exc.phrase or exc.kind) from None
    session = c.session
    row = _rules(session, presentity, lock=True)
    text, etag = document.decode("utf-8"), new_xcap_etag()
    if row is None:
        session.add(XcapDocument(auid=PRES_RULES, xui=presentity, filename="index", document=text, etag=etag))
    else:
        row.document, row.etag = text, etag
    session.flush()
    record_change(session, TOPIC_XCAP, change_key(PRES_RULES, presentity, "index"))


class PresencePort(PortService):
    """API.md 3.8; authenticated by ``sipId`` + ``password`` parameters, not the header.

    The write methods call ``c.writing()`` before they authenticate: on SQLite a
    transaction that has read and then writes fails at once when another worker wrote in
    between, so the writers' lock is taken before the first read (on the server databases
    the account's row lock orders them instead)."""

    __port_namespace__ = NS_PRESENCE
    __requires_auth__ = False

    @rpc(PresenceSipId, Unicode, PresenceInformation)
    def setPresenceInformation(ctx, sipId, password, information):  # noqa: N802, N803, N805 - wire names
        c = call_context(ctx)
        c.writing()  # before the first read (class docstring)
        set_presence(c, authenticate(c.session, sipId, password, for_update=True), information)

    @rpc(PresenceSipId, Unicode, _returns=PresenceInformation)
    def getPresenceInformation(ctx, sipId, password):  # noqa: N802, N803, N805
        c = call_context(ctx)
        return get_presence(c.session, authenticate(c.session, sipId, password))

    @rpc(PresenceSipId, Unicode)
    def deletePresenceInformation(ctx, sipId, password):  # noqa: N802, N803, N805
        c = call_context(ctx)
        c.writing()  # before the first read (class docstring)
        delete_presence(c, authenticate(c.session, sipId, password, for_update=True))

    @rpc(PresenceSipId, Unicode, _returns=StringArray)
    def getWatchers(ctx, sipId, password):  # noqa: N802, N803, N805
        c = call_context(ctx)
        return watchers(c.session, authenticate(c.session, sipId, password))

    @rpc(PresenceSipId, Unicode, _returns=PresencePolicy)
    def getPolicy(ctx, sipId, password):  # noqa: N802, N803, N805
        c = call_context(ctx)
        return get_policy(c.session, authenticate(c.session, sipId, password))

    @rpc(PresenceSipId, Unicode, PresencePolicy)
    def setPolicy(ctx, sipId, password, policy):  # noqa: N802, N803, N805
        c = call_context(ctx)
        c.writing()  # before the first read (class docstring)
        set_policy(c, authenticate(c.session, sipId, password, for_update=True), policy)
