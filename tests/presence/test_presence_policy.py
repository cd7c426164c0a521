"""pres-rules: identity conditions, sub-handling combination, transformations, OMA."""

from __future__ import annotations

from sipproxy.presence import policy

HEAD = ('<ruleset xmlns="urn:ietf:params:xml:ns:common-policy" '
        'xmlns:pr="urn:ietf:params:xml:ns:pres-rules" xmlns:ocp="urn:oma:xml:xdm:common-policy">')


def rule(rid: str, conditions: str, action: str, transformations: str = "") -> str:
    return (f'<rule id="{rid}"><conditions>{conditions}</conditions>'
            f"<actions><pr:sub-handling>{action}</pr:sub-handling></actions>"
            f"<transformations>{transformations}</transformations></rule>")


def rules(*items: str) -> str:
    return HEAD + "".join(items) + "</ruleset>"


ALL = "<pr:provide-services><pr:all-services/></pr:provide-services><pr:provide-all-attributes/>"


def test_no_document_or_no_matching_rule_is_confirm():
    assert policy.decide(None, "carol@example.com").action == policy.CONFIRM
    doc = rules(rule("a", '<identity><one id="sip:alice@example.com"/></identity>', "allow"))
    assert policy.decide(doc, "carol@example.com").action == policy.CONFIRM
    assert policy.decide(doc, "alice@example.com").action == policy.ALLOW


def test_one_many_domain_and_except():
    doc = rules(
        rule("friends", '<identity><one id="sip:carol@example.com"/></identity>', "allow", ALL),
        rule("company", '<identity><many domain="example.com"><except id="sip:eve@example.com"/>'
                        '</many></identity>', "polite-block"),
        rule("spam", '<identity><many domain="spam.example"/></identity>', "block"),
    )
    allowed = policy.decide(doc, "carol@example.com")
    assert allowed.action == policy.ALLOW  # allow beats polite-block (RFC 4745 10.2: the maximum)
    assert allowed.transformations.services == {"all"} and allowed.transformations.all_attributes
    assert policy.decide(doc, "dave@example.com").action == policy.POLITE_BLOCK
    assert policy.decide(doc, "eve@example.com").action == policy.CONFIRM  # excepted
    assert policy.decide(doc, "x@spam.example").action == policy.BLOCK
    assert policy.decide(doc, "x@other.example").action == policy.CONFIRM


def test_rule_without_conditions_applies_to_everybody_and_owner_is_allowed():
    doc = rules(rule("everyone", "", "block"))
    assert policy.decide(doc, "carol@example.com").action == policy.BLOCK
    assert policy.decide(doc, "bob@example.com", owner="bob@example.com").action == policy.ALLOW


def test_oma_other_identity_matches_only_the_unnamed():
    doc = rules(
        rule("named", '<identity><one id="sip:carol@example.com"/></identity>', "allow"),
        rule("others", "<ocp:other-identity/>", "block"),
    )
    assert policy.decide(doc, "carol@example.com").action == policy.ALLOW
    assert policy.decide(doc, "mallory@example.net").action == policy.BLOCK


def test_unreadable_or_hostile_rules_are_confirm():
    assert policy.decide("<ruleset", "carol@example.com").action == policy.CONFIRM
    xxe = '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + rules(rule("a", "", "allow"))
    assert policy.decide(xxe, "carol@example.com").action == policy.CONFIRM
