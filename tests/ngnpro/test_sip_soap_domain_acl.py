"""SipDomain's ``acl`` (fraud control, issue 15): an extension beyond CDRTool's SipDomain,
the shape and rules of SipAccount.acl.  Through a real ``python -m ngnpro``, with PHP's
SoapClient (non-WSDL rpc/encoded), PEAR-shaped envelopes (what CDRTool's client sends) and
zeep on the published WSDL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ngnpro.models import sip as m
from ngnpro.models.changes import ChangeFeed, ChangeLogEntry
from tests.ngnpro.harness import (
    ADMIN,
    SoapFaultError,
    call,
    php_call_is_list,
    zeep_auth,
    zeep_client,
    zeep_port,
)
from tests.ngnpro.test_sip_soap_accounts import R1, R2, add_resellers, fault, rows, sip

OFFICE = {"ip": "192.0.2.0", "mask": 24, "tag": "office"}
HOME = {"ip": "198.51.100.7", "mask": 32, "tag": ""}
V6 = {"ip": "2001:db8::", "mask": 48, "tag": "v6"}


def _domain(url: str, name: str = "example.com", auth: dict | None = ADMIN) -> dict:
    found = sip(url, "getDomains", {"query": {"filter": {"domain": name}}}, auth=auth)
    assert found["total"] == 1, found
    return found["domains"][0]


def _stored(server, name: str = "example.com") -> list[tuple[str, int, str, int]]:
    with server.sessionmaker()() as s:
        return [(a.ip, a.mask, a.tag, a.position) for a in s.execute(
            select(m.SipDomainAcl).join(m.SipDomain, m.SipDomain.id == m.SipDomainAcl.domain_id)
            .where(m.SipDomain.domain == name).order_by(m.SipDomainAcl.position)).scalars()]


def test_add_update_and_get_a_domain_acl_through_php(ngnpro_server):
    url = ngnpro_server.url
    # entries as the account ACL takes them: an address with a mask, a CIDR network (mask
    # from the prefix), an address alone (a host: /32 or /128), the tag optional
    sip(url, "addDomain", {"domain": {"domain": "example.com", "acl": [
        OFFICE, {"ip": "2001:db8::/48", "tag": "v6"}, {"ip": "198.51.100.7"}]}})
    dom = _domain(url)
    assert dom["acl"] == [OFFICE, V6, HOME]
    assert _stored(ngnpro_server) == [("192.0.2.0", 24, "office", 0), ("2001:db8::", 48, "v6", 1),
                                      ("198.51.100.7", 32, "", 2)]
    assert php_call_is_list(url, "Sip", "getDomains", {"query": {"filter": {"domain": "example.com"}}},
                            member="domains")
    # updateDomain without the member keeps the list
    sip(url, "updateDomain", {"domain": {"domain": "example.com", "verify_cert": 1}})
    assert _domain(url)["acl"] == [OFFICE, V6, HOME] and _domain(url)["verify_cert"] == 1
    # the CDRTool round trip: the domain page sends back what getDomains returned
    dom = _domain(url)
    dom["verify_cert"] = 0
    sip(url, "updateDomain", {"domain": dom})
    assert _domain(url)["acl"] == [OFFICE, V6, HOME] and _domain(url)["verify_cert"] == 0
    # a new list replaces the old one, in the order given
    sip(url, "updateDomain", {"domain": {"domain": "example.com", "acl": [HOME, OFFICE]}})
    assert _domain(url)["acl"] == [HOME, OFFICE]
    assert _stored(ngnpro_server) == [("198.51.100.7", 32, "", 0), ("192.0.2.0", 24, "office", 1)]
    # an empty list clears it
    sip(url, "updateDomain", {"domain": {"domain": "example.com", "acl": []}})
    assert _domain(url)["acl"] == [] and _stored(ngnpro_server) == []
    # deleting the domain takes its ACL along
    sip(url, "updateDomain", {"domain": {"domain": "example.com", "acl": [OFFICE]}})
    sip(url, "deleteDomain", {"domain": "example.com"})
    assert rows(ngnpro_server, m.SipDomainAcl) == []


def test_every_acl_change_is_in_the_change_feed(ngnpro_server):
    """What a running sipproxy follows: an ACL change is a ``sip_domain`` change like any
    other domain member's."""
    url = ngnpro_server.url
    sip(url, "addDomain", {"domain": {"domain": "example.com"}})
    feed = ChangeFeed(ngnpro_server.sessionmaker())
    sip(url, "updateDomain", {"domain": {"domain": "example.com", "acl": [OFFICE]}})
    sip(url, "updateDomain", {"domain": {"domain": "example.com", "acl": []}})
    assert [(c.topic, c.key) for c in feed.poll()] == [("sip_domain", "example.com")] * 2


@pytest.mark.parametrize("entry, field", [
    ({"ip": "300.1.2.3", "mask": 32}, "acl[1].ip"),
    ({"ip": "not an address"}, "acl[1].ip"),
    ({"ip": "192.0.2.0", "mask": 33}, "acl[1].mask"),
    ({"ip": "2001:db8::", "mask": 129}, "acl[1].mask"),
    ({"ip": "192.0.2.0", "mask": -1}, "acl[1].mask"),
])
def test_a_bad_entry_is_the_account_acls_fault_and_changes_nothing(ngnpro_server, entry, field):
    url = ngnpro_server.url
    sip(url, "addDomain", {"domain": {"domain": "example.com", "acl": [OFFICE]}})
    sip(url, "addAccount", {"account": {"id": {"username": "alice", "domain": "example.com"}, "password": "pw"}})
    bad_acl = [HOME, entry]
    with pytest.raises(SoapFaultError) as account_fault:
        sip(url, "updateAccount", {"account": {"id": {"username": "alice", "domain": "example.com"},
                                               "acl": bad_acl}})
    with pytest.raises(SoapFaultError) as domain_fault:
        sip(url, "updateDomain", {"domain": {"domain": "example.com", "verify_cert": 1, "acl": bad_acl}})
    assert domain_fault.value.code == account_fault.value.code == 1040
    assert domain_fault.value.message == account_fault.value.message and field in domain_fault.value.message
    before = len(rows(ngnpro_server, ChangeLogEntry))
    assert fault(url, "addDomain", {"domain": {"domain": "new.example", "acl": bad_acl}}) == 1040
    # nothing changed: not the ACL, not the member sent beside it, no domain added, no change logged
    assert _stored(ngnpro_server) == [("192.0.2.0", 24, "office", 0)]
    assert _domain(url)["verify_cert"] == 0
    assert sip(url, "getDomains", {"query": {"filter": {"domain": "new.example"}}})["total"] == 0
    assert len(rows(ngnpro_server, ChangeLogEntry)) == before


def test_a_reseller_cannot_read_or_change_another_resellers_domain_acl(ngnpro_server):
    url = ngnpro_server.url
    add_resellers(ngnpro_server)
    sip(url, "addDomain", {"domain": {"domain": "r1.example", "acl": [OFFICE]}}, auth=R1)
    sip(url, "addDomain", {"domain": {"domain": "r2.example", "acl": [HOME]}}, auth=R2)
    # reseller 2 sees only its own domain, with its own ACL
    listing = sip(url, "getDomains", {"query": {}}, auth=R2)
    assert [(d["domain"], d["acl"]) for d in listing["domains"]] == [("r2.example", [HOME])]
    assert sip(url, "getDomains", {"query": {"filter": {"domain": "r1.example"}}}, auth=R2)["total"] == 0
    # ... and can change neither reseller 1's ACL nor, impersonated by the admin, either
    for auth in (R2, dict(ADMIN, impersonate=102)):
        for acl in ([], [HOME]):
            assert fault(url, "updateDomain", {"domain": {"domain": "r1.example", "acl": acl}}, auth=auth) == 9002
    assert _stored(ngnpro_server, "r1.example") == [("192.0.2.0", 24, "office", 0)]
    # its owner can, and the unscoped admin sees both lists
    sip(url, "updateDomain", {"domain": {"domain": "r1.example", "acl": [OFFICE, V6]}}, auth=R1)
    assert _domain(url, "r1.example", auth=R1)["acl"] == [OFFICE, V6]
    everything = sip(url, "getDomains", {"query": {"orderBy": {"attribute": "domain", "direction": "ASC"}}})
    assert [d["acl"] for d in everything["domains"]] == [[OFFICE, V6], [HOME]]


def test_pear_clients_that_know_nothing_of_the_acl_are_unaffected(ngnpro_server):
    """CDRTool's own requests (PEAR-shaped): addDomain without ``acl`` gives an empty list;
    its domain page's update -- getDomains, change a member, send the object back, the
    ``acl`` it was given included -- keeps the list."""
    url = ngnpro_server.url
    call(url, "Sip", "addDomain", {"domain": {"domain": "example.com", "customer": 0, "reseller": 0}},
         typed={"domain": "SipDomain"})
    got = call(url, "Sip", "getDomains", {"query": {"filter": {"domain": "example.com"}}})
    assert got["domains"][0]["acl"] == []
    sip(url, "updateDomain", {"domain": {"domain": "example.com", "acl": [OFFICE, HOME]}})
    dom = call(url, "Sip", "getDomains", {"query": {"filter": {"domain": "example.com"}}})["domains"][0]
    assert dom["acl"] == [OFFICE, HOME]
    dom["match_ip_address"] = "192.0.2.10"
    call(url, "Sip", "updateDomain", {"domain": dom}, typed={"domain": "SipDomain"})
    assert _stored(ngnpro_server) == [("192.0.2.0", 24, "office", 0), ("198.51.100.7", 32, "", 1)]
    assert _domain(url)["match_ip_address"] == "192.0.2.10"


def test_zeep_reads_and_writes_the_acl_through_the_wsdl(ngnpro_server):
    from lxml import etree

    def item(**members: str) -> etree._Element:  # zeep writes SOAP-ENC:Array items from elements
        el = etree.Element("item")
        for name, value in members.items():
            etree.SubElement(el, name).text = value
        return el

    port = zeep_port(zeep_client(ngnpro_server.url), "Sip")
    hdr = zeep_auth(ngnpro_server.admin["username"], ngnpro_server.admin["password"])
    port.addDomain(domain={"domain": "example.com", "acl": [item(ip="192.0.2.0", mask="24", tag="office")]},
                   _soapheaders=hdr)
    listing = port.getDomains(query={"filter": {"domain": "example.com"}}, _soapheaders=hdr)
    assert [(a.ip, a.mask, a.tag) for a in listing.domains[0].acl] == [("192.0.2.0", 24, "office")]
