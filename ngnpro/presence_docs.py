"""The XML documents behind PresencePort: the PIDF that ``setPresenceInformation`` publishes,
the reading of a presentity's composed state, and the pres-rules document of
``getPolicy``/``setPolicy``.

Why here and not shared with sipproxy: ngnpro may import only ``ngnpro.models`` of the
other services (an import-linter contract), so the few PIDF and common-policy rules the
port needs are written again with lxml.  They follow what the presence agent does
(``sipproxy/presence/pidf.py`` and ``policy.py``): the composition order (the newest
publication with a person element, or with presence-level notes, wins) and the identity
form of the rules (``sip:user@domain``).  Pure code: no SQL, no sockets.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from lxml import etree

from ngnpro.xcap.errors import XcapError
from ngnpro.xcap.xmlsafe import parse_document

PIDF_NS = "urn:ietf:params:xml:ns:pidf"
DM_NS = "urn:ietf:params:xml:ns:pidf:data-model"
RPID_NS = "urn:ietf:params:xml:ns:pidf:rpid"
CP_NS = "urn:ietf:params:xml:ns:common-policy"
PR_NS = "urn:ietf:params:xml:ns:pres-rules"

#: the id of the tuple and of the person element PresencePort publishes
ELEMENT_ID = "presenceport"

#: the activities of API.md 3.8 that RFC 4480 has no element for: published as
#: ``<rpid:other>word</rpid:other>`` so they read back as they were set
API_WORDS = frozenset({"open", "idle", "available"})
#: RFC 4480 section 3.2 activity elements (``busy`` is also one of API.md's words)
RPID_ACTIVITIES = frozenset({
    "appointment", "away", "breakfast", "busy", "dinner", "holiday", "in-transit", "looking-for-work",
    "lunch", "meal", "meeting", "on-the-phone", "performance", "permanent-absence", "playing",
    "presentation", "shopping", "sleeping", "spectator", "steering", "travel", "tv", "unknown",
    "vacation", "working", "worship",
})
ACTIVITIES = API_WORDS | RPID_ACTIVITIES

#: the rule ids ``setPolicy`` writes
ALLOW_RULE = "presenceport-allow"
BLOCK_RULE = "presenceport-block"
#: an identity as a rule names it: a SIP/SIPS/TEL/PRES URI without blanks
_IDENTITY = re.compile(r"^(sips?|tel|pres):[^\s<>\"]+$", re.IGNORECASE)


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _timestamp(now: float) -> str:
    return _dt.datetime.fromtimestamp(now, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pidf_document(presentity: str, activity: str, note: str, now: float) -> str:
    """The PIDF a device of ``presentity`` would PUBLISH for ``activity`` and ``note``.

    One open tuple (the account is reachable: it just said so), the note as a
    presence-level ``<note>`` (every watcher shows it; RFC 5025's ``provide-note`` names
    it), and an RPID person with the activity.  Element order follows PIDF's schema:
    tuples, notes, extensions."""
    root = etree.Element(_q(PIDF_NS, "presence"), nsmap={None: PIDF_NS, "dm": DM_NS, "rpid": RPID_NS},
                         entity=f"sip:{presentity}")
    tup = etree.SubElement(root, _q(PIDF_NS, "tuple"), id=ELEMENT_ID)
    status = etree.SubElement(tup, _q(PIDF_NS, "status"))
    etree.SubElement(status, _q(PIDF_NS, "basic")).text = "open"
    etree.SubElement(tup, _q(PIDF_NS, "timestamp")).text = _timestamp(now)
    if note:
        etree.SubElement(root, _q(PIDF_NS, "note")).text = note
    person = etree.SubElement(root, _q(DM_NS, "person"), id=ELEMENT_ID)
    if activity:
        activities = etree.SubElement(person, _q(RPID_NS, "activities"))
        if activity in RPID_ACTIVITIES:
            etree.SubElement(activities, _q(RPID_NS, activity))
        else:
            etree.SubElement(activities, _q(RPID_NS, "other")).text = activity
    etree.SubElement(person, _q(DM_NS, "timestamp")).text = _timestamp(now)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode("utf-8")


def _parse(text: str) -> etree._Element | None:
    """A stored document (hardened parse), or None when it cannot be read: a device's bad
    publication must not break the reading of the others (the agent skips it too)."""
    try:
        return parse_document(text.encode("utf-8")).getroot()
    except XcapError:
        return None


def _texts(elements: Iterable[etree._Element]) -> str:
    return next(((e.text or "").strip() for e in elements if (e.text or "").strip()), "")


@dataclass
class State:
    """``{activity, note}`` as PresenceInformation returns it."""

    activity: str = "closed"
    note: str = ""


def composed_state(documents: Iterable[str]) -> State:
    """The activity and note a watcher sees in the composition of ``documents`` (oldest
    first: the pidf-manipulation document, then the publications by last change).

    As the agent composes: the person element(s) and the presence-level notes of the
    newest document that has them win.  The activity is the first RPID activity of that
    person (``other`` gives its text); without one, ``open`` when a tuple is open, else
    ``closed``.  The note is the presence-level note, else the person's ``dm:note``."""
    persons: list[etree._Element] = []
    notes: list[etree._Element] = []
    basics: list[str] = []
    for text in documents:
        root = _parse(text)
        if root is None or root.tag != _q(PIDF_NS, "presence"):
            continue
        doc_persons = root.findall(_q(DM_NS, "person"))
        doc_notes = root.findall(_q(PIDF_NS, "note"))
        if doc_persons:
            persons = doc_persons
        if doc_notes:
            notes = doc_notes
        basics += [(b.text or "").strip().lower() for b in root.iterfind(f"{_q(PIDF_NS, 'tuple')}/"
                                                                          f"{_q(PIDF_NS, 'status')}/"
                                                                          f"{_q(PIDF_NS, 'basic')}")]
    state = State(activity="open" if "open" in basics else "closed")
    for person in persons:
        activities = person.find(_q(RPID_NS, "activities"))
        chosen = [c for c in (activities if activities is not None else ())
                  if isinstance(c.tag, str) and c.tag != _q(RPID_NS, "note")]
        if chosen:
            name = etree.QName(chosen[0]).localname
            text = (chosen[0].text or "").strip()
            state.activity = text or name if name == "other" else name
            break
    state.note = _texts(notes) or _texts(n for p in persons for n in p.findall(_q(DM_NS, "note")))
    return state


# -- pres-rules ------------------------------------------------------------------------------


def identity(value: str) -> str | None:
    """``value`` as a rule's ``one id``: a URI (``sip:`` added to a bare ``user@domain``,
    the domain lowercased as the agent compares it), or None when it is not one."""
    value = value.strip()
    if "@" in value and not _IDENTITY.match(value):
        value = "sip:" + value
    if not _IDENTITY.match(value) or len(value) > 255:
        return None
    user, at, host = value.partition("@")
    return f"{user}@{host.lower()}" if at else value


@dataclass
class Policy:
    """``PresencePolicy``: who is allowed, who is blocked."""

    allow: list[str] = field(default_factory=list)
    block: list[str] = field(default_factory=list)


def _rule(root: etree._Element, rule_id: str, ids: list[str], action: str) -> None:
    rule = etree.SubElement(root, _q(CP_NS, "rule"), id=rule_id)
    conditions = etree.SubElement(rule, _q(CP_NS, "conditions"))
    ident = etree.SubElement(conditions, _q(CP_NS, "identity"))
    for uri in ids:
        etree.SubElement(ident, _q(CP_NS, "one"), id=uri)
    actions = etree.SubElement(rule, _q(CP_NS, "actions"))
    etree.SubElement(actions, _q(PR_NS, "sub-handling")).text = action
    transformations = etree.SubElement(rule, _q(CP_NS, "transformations"))
    if action == "allow":
        # RFC 5025's privacy default withholds what no provide-* names: an allowed watcher
        # sees everything, as the account's owner meant by "allow"
        for what in ("devices", "persons", "services"):
            provide = etree.SubElement(transformations, _q(PR_NS, f"provide-{what}"))
            etree.SubElement(provide, _q(PR_NS, f"all-{what}"))
        etree.SubElement(transformations, _q(PR_NS, "provide-all-attributes"))


def rules_document(policy: Policy) -> bytes:
    """A common-policy ruleset (RFC 4745, RFC 5025) with an allow rule for ``policy.allow``
    and a block rule for ``policy.block``; an empty list gives no rule (a rule without
    identities would match every watcher)."""
    root = etree.Element(_q(CP_NS, "ruleset"), nsmap={"cr": CP_NS, "pr": PR_NS})
    if policy.allow:
        _rule(root, ALLOW_RULE, policy.allow, "allow")
    if policy.block:
        _rule(root, BLOCK_RULE, policy.block, "block")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def read_policy(text: str | None) -> Policy:
    """The identities (``one id``) of the rules that allow, and of those that block or
    politely block, in document order; whatever else the document says (``many``,
    transformations, OMA conditions) is not part of PresencePolicy."""
    out = Policy()
    root = _parse(text) if text else None
    if root is None or root.tag != _q(CP_NS, "ruleset"):
        return out
    for rule in root.findall(_q(CP_NS, "rule")):
        action = (rule.findtext(f"{_q(CP_NS, 'actions')}/{_q(PR_NS, 'sub-handling')}") or "").strip()
        target = out.allow if action == "allow" else out.block if action in ("block", "polite-block") else None
        if target is None:
            continue
        for one in rule.iterfind(f"{_q(CP_NS, 'conditions')}/{_q(CP_NS, 'identity')}/{_q(CP_NS, 'one')}"):
            uri = one.get("id", "")
            if uri and uri not in target:
                target.append(uri)
    return out
