"""PresencePort end to end (API.md 3.8) through PHP's SoapClient (non-WSDL and WSDL mode), zeep
and raw PEAR-shaped envelopes: the six methods on the presence agent's tables and the XCAP
documents, authenticated by sipId and password (no auth header); a wrong password, an
unknown account or bad input is a fault that changes nothing."""

from __future__ import annotations

import hashlib
import time

import pytest
from lxml import etree
from sqlalchemy import select

from ngnpro.models.changes import ChangeLogEntry
from ngnpro.models.presence import PresencePublication, PresenceSubscription
from ngnpro.models.sip import SipAccount, SipAccountGroup
from ngnpro.models.xcap import XcapDocument
from ngnpro.xcap.usages import usage
from tests.ngnpro.harness import (
    SoapFaultError,
    envelope,
    fault_code,
    php_call,
    php_wsdl_call,
    raw_call,
    zeep_client,
    zeep_fault,
    zeep_list,
    zeep_port,
)

BOB = {"username": "bob", "domain": "example.com"}
CAROL = {"username": "carol", "domain": "example.com"}
PIDF_NS = "urn:ietf:params:xml:ns:pidf"


def presence(url, method, args, wsdl=False):
    return (php_wsdl_call if wsdl else php_call)(url, "Presence", method, args, auth=None)


def fault(url, method, args) -> SoapFaultError:
    with pytest.raises(SoapFaultError) as info:
        presence(url, method, args)
    return info.value


def bob(password="pw-b", **more):
    return {"sipId": BOB, "password": password, **more}


@pytest.fixture
def server(ngnpro_server):
    """example.com with bob and carol (added through SipPort: HA1 and clear text stored),
    dave with an HA1 only, erin with a clear-text password only, and frank blocked."""
    url = ngnpro_server.url
    php_call(url, "Sip", "addDomain", {"domain": {"domain": "example.com"}})
    php_call(url, "Sip", "addAccount", {"account": {"id": BOB, "password": "pw-b"}})
    php_call(url, "Sip", "addAccount", {"account": {"id": CAROL, "password": "pw-c"}})
    with ngnpro_server.sessionmaker()() as s:
        s.add(SipAccount(username="dave", domain="example.com",
                         ha1=hashlib.md5(b"dave:example.com:pw-d").hexdigest()))
        s.add(SipAccount(username="erin", domain="example.com", password="pw-e"))
        frank = SipAccount(username="frank", domain="example.com", password="pw-f",
                           ha1=hashlib.md5(b"frank:example.com:pw-f").hexdigest())
        s.add(frank)
        s.flush()
        s.add(SipAccountGroup(account_id=frank.id, name="blocked"))
        s.commit()
    return ngnpro_server


def _state(server):
    """Everything PresencePort may write: publications, rules documents, change-log rows."""
    with server.sessionmaker()() as s:
        return (sorted(tuple(r) for r in s.execute(select(PresencePublication.presentity, PresencePublication.etag,
                                                          PresencePublication.document))),
                sorted(tuple(r) for r in s.execute(select(XcapDocument.xui, XcapDocument.etag,
                                                          XcapDocument.document))),
                sorted(tuple(r) for r in s.execute(select(ChangeLogEntry.topic, ChangeLogEntry.key))))


def _changes(server, topic):
    with server.sessionmaker()() as s:
        return [k for (k,) in s.execute(select(ChangeLogEntry.key).where(ChangeLogEntry.topic == topic)
                                        .order_by(ChangeLogEntry.id))]


def _publications(server, presentity="bob@example.com"):
    with server.sessionmaker()() as s:
        return s.execute(select(PresencePublication.etag, PresencePublication.document, PresencePublication.expires_at)
                         .where(PresencePublication.presentity == presentity)).all()


def test_set_get_and_delete_presence_with_php(server):
    url = server.url
    assert presence(url, "setPresenceInformation",
                    bob(information={"activity": "busy", "note": "In a meeting <until> 3 & then lunch"})) in (None, "")
    [(etag, document, expires_at)] = _publications(server)
    assert etag.startswith("presport-")
    assert 604800 - 5 <= expires_at - time.time() <= 604800  # [ngnpro] presence_port_expires' default
    root = etree.fromstring(document.encode())
    usage("pidf-manipulation").validate(root)  # a valid PIDF, as a device would PUBLISH
    assert root.get("entity") == "sip:bob@example.com"
    assert root.findtext(f"{{{PIDF_NS}}}note") == "In a meeting <until> 3 & then lunch"
    assert root.find(".//{urn:ietf:params:xml:ns:pidf:rpid}activities/{urn:ietf:params:xml:ns:pidf:rpid}busy") \
        is not None
    assert root.findtext(f".//{{{PIDF_NS}}}basic") == "open"
    assert _changes(server, "presence") == ["bob@example.com"]
    assert presence(url, "getPresenceInformation", bob()) == {"activity": "busy",
                                                                "note": "In a meeting <until> 3 & then lunch"}
    # a second set replaces the port's publication, with a new entity tag
    presence(url, "setPresenceInformation", bob(information={"activity": "idle", "note": "Away"}))
    [(etag2, _, _)] = _publications(server)
    assert etag2 != etag and etag2.startswith("presport-")
    assert presence(url, "getPresenceInformation", bob()) == {"activity": "idle", "note": "Away"}
    assert presence(url, "deletePresenceInformation", bob()) in (None, "")
    assert _publications(server) == []
    assert _changes(server, "presence") == ["bob@example.com"] * 3
    assert presence(url, "getPresenceInformation", bob()) == {"activity": "closed", "note": ""}
    presence(url, "deletePresenceInformation", bob())  # nothing to delete: no change recorded
    assert len(_changes(server, "presence")) == 3


def test_get_presence_composes_the_devices_publications(server):
    """A device's PUBLISH (written as the agent stores it) and the port's: the newest person
    and note win, as the agent composes them; deleting removes only the port's."""
    url = server.url
    presence(url, "setPresenceInformation", bob(information={"activity": "available", "note": "At the desk"}))
    time.sleep(0.01)
    device = (f'<?xml version="1.0"?><presence xmlns="{PIDF_NS}" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"'
              ' xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:bob@example.com">'
              '<tuple id="phone"><status><basic>open</basic></status></tuple><dm:person id="p">'
              '<rpid:activities><rpid:on-the-phone/></rpid:activities><dm:note>On a call</dm:note></dm:person>'
              '</presence>')
    with server.sessionmaker()() as s:
        s.add(PresencePublication(presentity="bob@example.com", etag="device1", document=device,
                                  expires_at=int(time.time()) + 600))
        s.commit()
    # the device's person is newer; the port's presence-level note is the only one
    assert presence(url, "getPresenceInformation", bob()) == {"activity": "on-the-phone", "note": "At the desk"}
    presence(url, "deletePresenceInformation", bob())
    assert [e for e, _, _ in _publications(server)] == ["device1"]
    assert presence(url, "getPresenceInformation", bob()) == {"activity": "on-the-phone", "note": "On a call"}


def test_watchers_with_php_and_zeep(server):
    now = int(time.time())
    with server.sessionmaker()() as s:
        for i, (watcher, state, event, expires) in enumerate([
            ("carol@example.com", "active", "presence", now + 600),
            ("carol@example.com", "active", "presence", now + 600),  # a second device of carol's
            ("dave@other.org", "pending", "presence", now + 600),
            ("erin@example.com", "terminated", "presence", now + 600),
            ("bob@example.com", "active", "presence.winfo", now + 600),  # not a watcher of presence
            ("old@example.com", "active", "presence", now - 10),  # lapsed
        ]):
            s.add(PresenceSubscription(call_id=f"c{i}", from_tag="f", to_tag=f"pa-{i}", event=event,
                                       presentity="bob@example.com", watcher=watcher, watcher_uri=f"sip:{watcher}",
                                       presentity_uri="sip:bob@example.com", remote_target="sip:x@127.0.0.1",
                                       state=state, expires_at=expires))
        s.commit()
    expected = ["sip:carol@example.com active", "sip:dave@other.org pending", "sip:erin@example.com terminated"]
    assert presence(server.url, "getWatchers", bob()) == expected
    assert presence(server.url, "getWatchers", {"sipId": CAROL, "password": "pw-c"}) == []
    port = zeep_port(zeep_client(server.url), "Presence")
    assert list(port.getWatchers(sipId=BOB, password="pw-b")) == expected


def test_policy_with_php_and_zeep(server):
    url = server.url
    assert presence(url, "getPolicy", bob()) == {"allow": [], "block": []}
    presence(url, "setPolicy", bob(policy={"allow": ["sip:carol@example.com", "Dave@Other.ORG"],
                                           "block": ["sip:mallory@evil.example"]}))
    with server.sessionmaker()() as s:
        row = s.scalars(select(XcapDocument).where(XcapDocument.auid == "pres-rules")).one()
    assert (row.xui, row.filename) == ("bob@example.com", "index")
    usage("pres-rules").validate(etree.fromstring(row.document.encode()))  # as an XCAP PUT would check
    assert "provide-all-attributes" in row.document  # an allowed watcher sees the state
    assert _changes(server, "xcap") == ["pres-rules/bob@example.com/index"]
    policy = {"allow": ["sip:carol@example.com", "sip:Dave@other.org"], "block": ["sip:mallory@evil.example"]}
    assert presence(url, "getPolicy", bob()) == policy
    assert presence(url, "getPolicy", bob(), wsdl=True) == policy
    client = zeep_client(url)
    port = zeep_port(client, "Presence")
    got = port.getPolicy(sipId=BOB, password="pw-b")
    assert (list(got.allow), list(got.block)) == (policy["allow"], policy["block"])
    port.setPolicy(sipId=BOB, password="pw-b", policy={"allow": zeep_list(client, "string", ["sip:erin@example.com"]),
                                                       "block": []})
    with server.sessionmaker()() as s:
        etag = s.scalars(select(XcapDocument.etag).where(XcapDocument.auid == "pres-rules")).one()
    assert etag != row.etag  # a new entity tag on every write
    assert presence(url, "getPolicy", bob()) == {"allow": ["sip:erin@example.com"], "block": []}
    assert _changes(server, "xcap") == ["pres-rules/bob@example.com/index"] * 2


def test_a_document_written_through_xcap_reads_back(server):
    """getPolicy reads a document that an XCAP client wrote: polite-block counts as block,
    rules for everybody (``many``) are not identities."""
    doc = ('<cr:ruleset xmlns:cr="urn:ietf:params:xml:ns:common-policy" xmlns:pr="urn:ietf:params:xml:ns:pres-rules">'
           '<cr:rule id="a"><cr:conditions><cr:identity><cr:one id="sip:carol@example.com"/></cr:identity>'
           '</cr:conditions><cr:actions><pr:sub-handling>allow</pr:sub-handling></cr:actions></cr:rule>'
           '<cr:rule id="b"><cr:conditions><cr:identity><cr:one id="sip:x@y.org"/><cr:many domain="z.org"/>'
           '</cr:identity></cr:conditions><cr:actions><pr:sub-handling>polite-block</pr:sub-handling></cr:actions>'
           '</cr:rule><cr:rule id="c"><cr:actions><pr:sub-handling>confirm</pr:sub-handling></cr:actions></cr:rule>'
           '</cr:ruleset>')
    with server.sessionmaker()() as s:
        s.add(XcapDocument(auid="pres-rules", xui="bob@example.com", filename="index", document=doc, etag="e1"))
        s.commit()
    assert presence(server.url, "getPolicy", bob()) == {"allow": ["sip:carol@example.com"], "block": ["sip:x@y.org"]}


def test_php_wsdl_mode(server):
    url = server.url
    presence(url, "setPresenceInformation", bob(information={"activity": "away", "note": "Back soon"}), wsdl=True)
    assert presence(url, "getPresenceInformation", bob(), wsdl=True) == {"activity": "away", "note": "Back soon"}
    presence(url, "deletePresenceInformation", bob(), wsdl=True)
    assert presence(url, "getWatchers", bob(), wsdl=True) == []
    with pytest.raises(SoapFaultError) as info:
        presence(url, "getPresenceInformation", bob("wrong"), wsdl=True)
    assert info.value.code == 9001


def test_zeep_set_and_get_presence(server):
    port = zeep_port(zeep_client(server.url), "Presence")
    port.setPresenceInformation(sipId=BOB, password="pw-b", information={"activity": "open", "note": "Hello"})
    got = port.getPresenceInformation(sipId=BOB, password="pw-b")
    assert (got.activity, got.note) == ("open", "Hello")
    port.deletePresenceInformation(sipId=BOB, password="pw-b")
    assert _publications(server) == []


@pytest.mark.parametrize(("user", "password"), [("dave", "pw-d"), ("erin", "pw-e")], ids=["ha1-only", "clear-text-only"])
def test_stored_ha1_or_clear_text(server, user, password):
    args = {"sipId": {"username": user, "domain": "example.com"}, "password": password}
    presence(server.url, "setPresenceInformation", {**args, "information": {"activity": "busy", "note": "x"}})
    assert presence(server.url, "getPresenceInformation", args) == {"activity": "busy", "note": "x"}
    with pytest.raises(SoapFaultError) as info:
        presence(server.url, "getPresenceInformation", {**args, "password": password + "x"})
    assert info.value.code == 9001


WRONG = [
    ("wrong-password", {"sipId": BOB, "password": "pw-x"}, 9001),
    ("empty-password", {"sipId": BOB, "password": ""}, 9001),
    ("unknown-account", {"sipId": {"username": "nobody", "domain": "example.com"}, "password": "pw-b"}, 9001),
    ("unknown-domain", {"sipId": {"username": "bob", "domain": "example.org"}, "password": "pw-b"}, 9001),
    ("bad-sipid", {"sipId": {"username": "", "domain": "example.com"}, "password": "pw-b"}, 9001),
    ("blocked", {"sipId": {"username": "frank", "domain": "example.com"}, "password": "pw-f"}, 9002),
]


@pytest.mark.parametrize(("case", "who", "code"), WRONG, ids=[w[0] for w in WRONG])
def test_refused_login_changes_nothing(server, case, who, code):
    url = server.url
    presence(url, "setPresenceInformation", bob(information={"activity": "busy", "note": "kept"}))
    presence(url, "setPolicy", bob(policy={"allow": ["sip:carol@example.com"], "block": []}))
    before = _state(server)
    for method, extra in (("setPresenceInformation", {"information": {"activity": "idle", "note": "changed"}}),
                          ("deletePresenceInformation", {}), ("getPresenceInformation", {}), ("getWatchers", {}),
                          ("getPolicy", {}), ("setPolicy", {"policy": {"allow": [], "block": ["sip:carol@example.com"]}})):
        err = fault(url, method, {**who, **extra})
        assert err.code == code, (method, err)
        if code == 9001:
            assert "bob" not in err.message and "nobody" not in err.message  # tells nothing of the accounts
    assert _state(server) == before
    assert presence(url, "getPresenceInformation", bob()) == {"activity": "busy", "note": "kept"}


@pytest.mark.parametrize(("method", "extra", "field"), [
    ("setPresenceInformation", {"information": {"activity": "dancing", "note": ""}}, "information.activity"),
    ("setPresenceInformation", {"information": {"activity": "busy", "note": "x" * 2000}}, "information.note"),
    ("setPresenceInformation", {"information": {"activity": "busy", "note": "bell\x7f"}}, "information.note"),
    ("setPolicy", {"policy": {"allow": ["not a uri"], "block": []}}, "policy.allow[0]"),
    ("setPolicy", {"policy": {"allow": ["sip:a@b.c"], "block": ["sip:a@b.c"]}}, "policy"),
], ids=["activity", "long-note", "control-char", "bad-uri", "allowed-and-blocked"])
def test_bad_input_is_1040_and_changes_nothing(server, method, extra, field):
    before = _state(server)
    err = fault(server.url, method, bob(**extra))
    assert err.code == 1040 and field in err.message, err
    assert _state(server) == before


def test_no_auth_header_needed_and_an_auth_header_is_not_a_login(server):
    """The port reads only sipId and password: an engine admin header does not stand in
    for them."""
    params = "<sipId><username>bob</username><domain>example.com</domain></sipId><password>pw-b</password>"
    status, root = raw_call(server.url, envelope("Presence", "getPresenceInformation", params, auth=None))
    assert status == 200 and fault_code(root) is None
    status, root = raw_call(server.url, envelope("Presence", "getPresenceInformation",
                                                 params.replace("pw-b", "nope"), auth=server.admin))
    assert status == 500 and fault_code(root) == 9001


def test_zeep_sees_the_fault_code(server):
    from zeep.exceptions import Fault

    port = zeep_port(zeep_client(server.url), "Presence")
    with pytest.raises(Fault) as info:
        port.getWatchers(sipId=BOB, password="wrong")
    assert zeep_fault(info.value) == 9001
