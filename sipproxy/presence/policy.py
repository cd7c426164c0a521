"""Subscription authorization from the presentity's pres-rules document.

The document is an IETF common-policy ruleset (RFC 4745) with the presence-rules actions
and transformations (RFC 5025), or the OMA variant (auid ``org.openmobilealliance.pres-rules``,
which adds the ``other-identity`` condition).  Why a module of its own: the decision is the
same whichever way the rules arrive (a SUBSCRIBE, or a changed document re-evaluating the
live subscriptions), and it is pure -- the store hands in the document text.

Combination (RFC 4745 section 10): every rule whose conditions all match applies; the
``sub-handling`` with the highest value wins (block < confirm < polite-block < allow) and
the transformations are united.  When no rule matches the answer is ``confirm``: the
subscription waits (pending) until the presentity decides, through watcher info.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from lxml import etree

from sipproxy.presence.pidf import Transformations, XmlError, parse_xml

__all__ = ["PRES_RULES_AUIDS", "CP_NS", "PR_NS", "OMA_CP_NS", "ALLOW", "BLOCK", "CONFIRM", "POLITE_BLOCK",
           "Decision", "Rule", "parse_rules", "evaluate", "decide"]

CP_NS = "urn:ietf:params:xml:ns:common-policy"
PR_NS = "urn:ietf:params:xml:ns:pres-rules"
OMA_CP_NS = "urn:oma:xml:xdm:common-policy"

#: the XCAP usages a presentity's rules are read from, in order (IETF, then OMA)
PRES_RULES_AUIDS = ("pres-rules", "org.openmobilealliance.pres-rules")

BLOCK, CONFIRM, POLITE_BLOCK, ALLOW = "block", "confirm", "polite-block", "allow"
_RANK = {BLOCK: 0, CONFIRM: 10, POLITE_BLOCK: 20, ALLOW: 30}


@dataclass
class Rule:
    """One rule: its identity condition (None: any watcher), its action, transformations."""

    id: str
    ones: set[str] = field(default_factory=set)
    #: (domain or "" for any, exceptions) of each <many>
    manys: list[tuple[str, set[str], set[str]]] = field(default_factory=list)
    has_identity: bool = False
    other_identity: bool = False
    anonymous: bool = False
    action: str | None = None
    transformations: Transformations = field(default_factory=Transformations)

    def matches_identity(self, watcher: str) -> bool:
        """``watcher`` is ``user@domain``."""
        if watcher in self.ones:
            return True
        domain = watcher.rpartition("@")[2]
        for many_domain, except_domains, except_ids in self.manys:
            if many_domain and many_domain != domain:
                continue
            if domain in except_domains or watcher in except_ids:
                continue
            return True
        return False


@dataclass(frozen=True)
class Decision:
    action: str
    transformations: Transformations
    rules: tuple[str, ...] = ()


def _identity(value: str) -> str:
    """``sip:alice@Example.com`` -> ``alice@example.com`` (how rules and watchers compare)."""
    value = value.strip()
    for scheme in ("sip:", "sips:", "pres:", "tel:"):
        if value.lower().startswith(scheme):
            value = value[len(scheme):]
            break
    user, at, host = value.partition("@")
    return f"{user}@{host.lower()}" if at else value.lower()


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _transformations(element: etree._Element | None) -> Transformations:
    t = Transformations()
    if element is None:
        return t
    for child in element:
        if not isinstance(child.tag, str) or etree.QName(child).namespace != PR_NS:
            continue
        name = etree.QName(child).localname
        target = {"provide-services": t.services, "provide-persons": t.persons,
                  "provide-devices": t.devices}.get(name)
        if target is not None:
            for sel in child:
                if not isinstance(sel.tag, str):
                    continue
                local = etree.QName(sel).localname
                if local.startswith("all-"):
                    target.add("all")
                else:
                    target.add((local, (sel.text or "").strip()))
        elif name == "provide-all-attributes":
            t.all_attributes = True
        elif name.startswith("provide-") and (child.text or "true").strip().lower() not in ("false", "0"):
            t.attributes.add(name[len("provide-"):])
    return t


def parse_rules(document: bytes | str, max_bytes: int = 1 << 20) -> list[Rule]:
    """The rules of a pres-rules document; :class:`XmlError` when it cannot be read."""
    root = parse_xml(document, max_bytes)
    if root.tag != _q(CP_NS, "ruleset"):
        raise XmlError("not a common-policy ruleset")
    rules = []
    for element in root.findall(_q(CP_NS, "rule")):
        rule = Rule(id=element.get("id", ""))
        conditions = element.find(_q(CP_NS, "conditions"))
        if conditions is not None:
            for identity in conditions.findall(_q(CP_NS, "identity")):
                rule.has_identity = True
                for one in identity.findall(_q(CP_NS, "one")):
                    rule.ones.add(_identity(one.get("id", "")))
                for many in identity.findall(_q(CP_NS, "many")):
                    excepted = many.findall(_q(CP_NS, "except"))
                    rule.manys.append((
                        (many.get("domain") or "").lower(),
                        {(e.get("domain") or "").lower() for e in excepted if e.get("domain")},
                        {_identity(e.get("id") or "") for e in excepted if e.get("id")},
                    ))
            rule.other_identity = conditions.find(_q(OMA_CP_NS, "other-identity")) is not None
            rule.anonymous = conditions.find(_q(OMA_CP_NS, "anonymous-request")) is not None
        actions = element.find(_q(CP_NS, "actions"))
        if actions is not None:
            handling = actions.find(_q(PR_NS, "sub-handling"))
            if handling is not None and (handling.text or "").strip() in _RANK:
                rule.action = (handling.text or "").strip()
        rule.transformations = _transformations(element.find(_q(CP_NS, "transformations")))
        rules.append(rule)
    return rules


def evaluate(rules: list[Rule], watcher: str, anonymous: bool = False, aliases: tuple[str, ...] = ()) -> Decision:
    """The decision for ``watcher`` (``user@domain``) under ``rules``; a rule naming one of
    the watcher's ``aliases`` names the watcher (the same account)."""
    names = [_identity(watcher), *(_identity(a) for a in aliases)]
    identified = [r for r in rules if r.has_identity and not anonymous
                  and any(r.matches_identity(n) for n in names)]
    matched = []
    for rule in rules:
        if rule.has_identity:
            if rule in identified:
                matched.append(rule)
        elif rule.anonymous:
            if anonymous:
                matched.append(rule)
        elif rule.other_identity:
            if not identified and not anonymous:
                matched.append(rule)
        else:  # no conditions: applies to everybody
            matched.append(rule)
    acting = [r for r in matched if r.action is not None]
    if not acting:
        return Decision(CONFIRM, Transformations())
    action = max((r.action for r in acting), key=lambda a: _RANK[a or BLOCK])
    t = Transformations()
    for rule in matched:
        t.merge(rule.transformations)
    return Decision(action or CONFIRM, t, tuple(r.id for r in matched))


def decide(document: bytes | str | None, watcher: str, *, owner: str = "",
           aliases: tuple[str, ...] = ()) -> Decision:
    """The decision from a whole document (None: the presentity has none).

    The presentity itself is always allowed everything (a user sees its own state); an
    unreadable document decides ``confirm``, as no rules would."""
    if owner and _identity(watcher) == _identity(owner):
        return Decision(ALLOW, Transformations(services={"all"}, persons={"all"}, devices={"all"},
                                               all_attributes=True), ("self",))
    if document is None:
        return Decision(CONFIRM, Transformations())
    rules = _rules_of(document) if len(document) <= _CACHED_BYTES else _parse_or_none(document)
    if rules is None:
        return Decision(CONFIRM, Transformations())
    return evaluate(list(rules), watcher, aliases=aliases)


#: documents up to this size keep their parsed rules (:func:`_rules_of`)
_CACHED_BYTES = 64 * 1024


def _parse_or_none(document: bytes | str) -> tuple[Rule, ...] | None:
    try:
        return tuple(parse_rules(document))
    except XmlError:
        return None


@lru_cache(maxsize=512)
def _rules_of(document: bytes | str) -> tuple[Rule, ...] | None:
    """The parsed rules of a document, kept by its text: a state change decides for every
    watcher of the presentity against the same document, which was parsed once per watcher
    (a third of the agent's CPU per NOTIFY).  :func:`evaluate` only reads the rules; a
    changed document is another text, hence parsed afresh."""
    return _parse_or_none(document)
