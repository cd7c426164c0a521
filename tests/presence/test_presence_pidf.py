"""PIDF: the hardened reader (XXE, billion laughs, size), composition, transformations."""

from __future__ import annotations

import pytest
from lxml import etree

from sipproxy.presence import pidf

NS = f'xmlns="{pidf.PIDF_NS}" xmlns:dm="{pidf.DM_NS}" xmlns:rpid="{pidf.RPID_NS}"'


def doc(tuple_id: str, basic: str, note: str = "", person: str = "") -> bytes:
    return (f'<?xml version="1.0"?><presence {NS} entity="sip:bob@example.com">'
            f'<tuple id="{tuple_id}"><status><basic>{basic}</basic></status>'
            f'<contact>sip:bob@192.0.2.{len(tuple_id)}</contact></tuple>'
            + (f"<note>{note}</note>" if note else "") + person + "</presence>").encode()


XXE = (b'<?xml version="1.0"?><!DOCTYPE presence [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><note>&x;</note></presence>')
LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
          b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><note>&lol2;</note></presence>')


@pytest.mark.parametrize("data", [XXE, LAUGHS, XXE.decode().encode("utf-16")], ids=["xxe", "laughs", "utf16"])
def test_dtds_and_entities_are_refused(data):
    with pytest.raises(pidf.XmlError):
        pidf.parse_pidf(data)


def test_size_limit_and_shape():
    with pytest.raises(pidf.XmlError, match="over 100 bytes"):
        pidf.parse_pidf(doc("a", "open"), max_bytes=100)
    with pytest.raises(pidf.XmlError, match="not a PIDF"):
        pidf.parse_pidf(b"<presence/>")
    with pytest.raises(pidf.XmlError, match="malformed"):
        pidf.parse_pidf(b"<presence")
    assert pidf.parse_pidf(doc("a", "open")).get("entity") == "sip:bob@example.com"


def test_compose_keeps_every_device_and_the_newest_person():
    person_old = '<dm:person id="p"><rpid:activities><rpid:away/></rpid:activities></dm:person>'
    person_new = '<dm:person id="p"><rpid:activities><rpid:meeting/></rpid:activities></dm:person>'
    first = pidf.parse_pidf(doc("phone", "open", "old note", person_old))
    second = pidf.parse_pidf(doc("laptop", "closed", "new note", person_new))
    out = pidf.compose("sip:bob@example.com", [first, second])
    text = pidf.serialise(out).decode()
    assert [t.get("id") for t in out.findall(f"{{{pidf.PIDF_NS}}}tuple")] == ["phone", "laptop"]
    assert "meeting" in text and "away" not in text  # RPID passed through, newest wins
    assert "new note" in text and "old note" not in text
    pidf.parse_pidf(pidf.serialise(out))  # still a valid PIDF


def test_transform_withholds_what_no_rule_provides():
    person = ('<dm:person id="p"><rpid:activities><rpid:busy/></rpid:activities>'
              '<rpid:mood><rpid:happy/></rpid:mood></dm:person>')
    source = pidf.parse_pidf(doc("phone", "open", "secret note", person))
    nothing = pidf.transform(source, pidf.Transformations())
    assert len(nothing) == 0
    services = pidf.transform(source, pidf.Transformations(services={"all"}))
    assert [etree.QName(c).localname for c in services] == ["tuple"]
    moods = pidf.transform(source, pidf.Transformations(persons={"all"}, attributes={"mood"}))
    text = etree.tostring(moods).decode()
    assert "happy" in text and "busy" not in text and "secret note" not in text
    by_uri = pidf.transform(source, pidf.Transformations(services={("service-uri", "sip:bob@192.0.2.5")}))
    assert len(by_uri) == 1
    other_uri = pidf.transform(source, pidf.Transformations(services={("service-uri", "sip:x@y")}))
    assert len(other_uri) == 0
    everything = pidf.transform(source, pidf.Transformations(services={"all"}, persons={"all"},
                                                             all_attributes=True))
    assert "busy" in etree.tostring(everything).decode() and "secret note" in etree.tostring(everything).decode()


def test_neutral_document_is_closed_and_empty():
    out = pidf.serialise(pidf.neutral("sip:bob@example.com")).decode()
    assert "<basic>closed</basic>" in out and "note" not in out
