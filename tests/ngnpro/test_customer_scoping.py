"""Authentication variants (API.md 1.5) and scoping (5.3) on CustomerPort: a reseller or
customer sees and changes only its own records and its sub-customers'."""

from __future__ import annotations

import pytest

from tests.ngnpro.harness import (
    ADMIN,
    SoapFaultError,
    call,
    envelope,
    fault_code,
    php_call,
    raw_call,
)


def admin_as(server, impersonate: int | None = None) -> dict:
    auth = dict(server.admin)
    if impersonate is not None:
        auth["impersonate"] = impersonate
    return auth


def login(username: str, password: str = "pw") -> dict:
    return {"username": username, "password": password, "admin": False}


@pytest.fixture
def world(ngnpro_server) -> dict:
    """Two resellers, each with a customer created through the reseller's own login."""
    url = ngnpro_server.url
    ids = {}
    for r in ("r1", "r2"):
        ids[r] = call(url, "Customer", "addAccount", {"account": {"username": r, "password": "pw", "resellerActive": 1,
                                                                  "properties": [{"name": "pstn_access", "value": "1",
                                                                                  "permission": "admin"}]}})["id"]
        c = f"{r}c"
        ids[c] = call(url, "Customer", "addAccount", {"account": {"username": c, "password": "pw"}},
                      auth=login(r))["id"]
    return ids


def ids_seen(server, auth: dict, method: str = "getCustomers") -> set[int]:
    res = call(server.url, "Customer", method, {"query": {}}, auth=auth)
    assert res["total"] == len(res["accounts"])
    return {a["id"] for a in res["accounts"]}


def test_reseller_created_customer_belongs_to_it(ngnpro_server, world) -> None:
    sub = call(ngnpro_server.url, "Customer", "getAccount", {"id": world["r1c"]})
    assert sub["reseller"] == world["r1"]


def test_visibility_per_login(ngnpro_server, world) -> None:
    assert ids_seen(ngnpro_server, ngnpro_server.admin) == set(world.values())
    assert ids_seen(ngnpro_server, login("r1")) == {world["r1"], world["r1c"]}
    assert ids_seen(ngnpro_server, admin_as(ngnpro_server, world["r2"])) == {world["r2"], world["r2c"]}
    assert ids_seen(ngnpro_server, login("r1c")) == {world["r1c"]}
    assert ids_seen(ngnpro_server, admin_as(ngnpro_server, world["r1c"])) == {world["r1c"]}
    assert ids_seen(ngnpro_server, admin_as(ngnpro_server, 0)) == set(world.values())  # 0 = none


@pytest.mark.parametrize("auth_kind", ["login", "impersonate"])
def test_reseller_cannot_read_or_change_another_resellers_records(ngnpro_server, world, auth_kind) -> None:
    url = ngnpro_server.url
    auth = login("r1") if auth_kind == "login" else admin_as(ngnpro_server, world["r1"])
    for victim in (world["r2"], world["r2c"]):
        for method, params in (
            ("getAccount", {"id": victim}),
            ("updateAccount", {"account": {"id": victim, "firstName": "pwned", "password": "x"}}),
            ("deleteAccount", {"id": victim}),
            ("getProperties", {"customer": victim}),
            ("setProperties", {"customer": victim, "properties": [{"name": "evil", "value": "1"}]}),
        ):
            with pytest.raises(SoapFaultError) as exc:
                call(url, "Customer", method, params, auth=auth)
            assert exc.value.code == 9002, (method, victim)
    victim = call(url, "Customer", "getAccount", {"id": world["r2c"]})
    assert victim["firstName"] == "" and victim["password"] == "pw" and victim["properties"] == []
    # and its own sub-customer it can change
    call(url, "Customer", "updateAccount", {"account": {"id": world["r1c"], "firstName": "mine"}}, auth=auth)
    assert call(url, "Customer", "getAccount", {"id": world["r1c"]})["firstName"] == "mine"


def test_reseller_cannot_escalate(ngnpro_server, world) -> None:
    url = ngnpro_server.url
    r1 = login("r1")
    cases = [
        ("addAccount", {"account": {"username": "sneaky", "password": "pw", "resellerActive": 1}}),
        ("addAccount", {"account": {"username": "sneaky", "password": "pw", "reseller": world["r2"]}}),
        ("updateAccount", {"account": {"id": world["r1c"], "resellerActive": 1}}),
        ("updateAccount", {"account": {"id": world["r1c"], "reseller": world["r2"]}}),
        ("setProperties", {"customer": world["r1"], "properties": [{"name": "pstn_access", "value": "0"}]}),
        ("deleteAccount", {"id": world["r1"]}),
    ]
    for method, params in cases:
        with pytest.raises(SoapFaultError) as exc:
            call(url, "Customer", method, params, auth=r1)
        assert exc.value.code in (9002,), (method, params, exc.value.message)
    # dropping the admin-only property from its own record keeps it (no fault: a round trip)
    call(url, "Customer", "updateAccount", {"account": {"id": world["r1"], "properties": []}}, auth=r1)
    props = call(url, "Customer", "getProperties", {"customer": world["r1"]})
    assert props == [{"name": "pstn_access", "value": "1", "category": "", "permission": "admin"}]
    assert ids_seen(ngnpro_server, r1) == {world["r1"], world["r1c"]}


def test_dropping_an_admin_property_in_a_round_trip_keeps_it(ngnpro_server, world) -> None:
    """A reseller saving its own record without the admin-only property must not fault if it
    did not touch it -- but here it omitted it, so the property is kept (not deleted)."""
    url = ngnpro_server.url
    call(url, "Customer", "setProperties", {"customer": world["r1"], "properties": [
        {"name": "records_per_page", "value": "20", "permission": "customer"}]}, auth=login("r1"))
    names = {p["name"] for p in call(url, "Customer", "getProperties", {"customer": world["r1"]})}
    assert names == {"pstn_access", "records_per_page"}


def test_customer_login_limits(ngnpro_server, world) -> None:
    url = ngnpro_server.url
    c = login("r1c")
    assert call(url, "Customer", "getAccount", {"id": world["r1c"]}, auth=c)["username"] == "r1c"
    res = call(url, "Customer", "getResellers", {"query": {"filter": {"customer": world["r1c"]}}}, auth=c)
    assert [a["id"] for a in res["accounts"]] == [world["r1c"]]
    for method, params in (
        ("getAccount", {"id": world["r1"]}),
        ("addAccount", {"account": {"username": "kid", "password": "pw"}}),
        ("updateAccount", {"account": {"id": world["r1c"], "impersonate": world["r1"]}}),
        ("deleteAccount", {"id": world["r1c"]}),
    ):
        with pytest.raises(SoapFaultError) as exc:
            call(url, "Customer", method, params, auth=c)
        assert exc.value.code == 9002, method
    call(url, "Customer", "updateAccount", {"account": {"id": world["r1c"], "city": "Zwolle"}}, auth=c)
    assert call(url, "Customer", "getAccount", {"id": world["r1c"]})["city"] == "Zwolle"


@pytest.mark.parametrize("auth", [
    {"username": "admin", "password": "nope", "admin": True},
    {"username": "nobody", "password": "admin-secret", "admin": True},
    {"username": "r1", "password": "wrong", "admin": False},
    {"username": "admin", "password": "admin-secret", "admin": False},  # admin creds are not a customer
    {"username": "admin", "password": "admin-secret", "admin": True, "impersonate": 999999},
    {"username": "", "password": "", "admin": True},
])
def test_bad_credentials_fault_9001_and_change_nothing(ngnpro_server, world, auth) -> None:
    with pytest.raises(SoapFaultError) as exc:
        call(ngnpro_server.url, "Customer", "updateAccount", {"account": {"id": world["r1c"], "city": "X"}}, auth=auth)
    assert exc.value.code == 9001
    assert call(ngnpro_server.url, "Customer", "getAccount", {"id": world["r1c"]})["city"] == ""


@pytest.mark.parametrize("header", [
    # qualified, as PHP's SoapHeader sends it
    '<ns4:auth><username>admin</username><password>admin-secret</password><admin>1</admin></ns4:auth>',
    # older PEAR deployments: actor and mustUnderstand attributes
    '<auth SOAP-ENV:actor="0" SOAP-ENV:mustUnderstand="0"><username xsi:type="xsd:string">admin</username>'
    '<password xsi:type="xsd:string">admin-secret</password><admin xsi:type="xsd:boolean">true</admin></auth>',
    # mustUnderstand=1 is not something the client sends, but is ignored all the same
    '<auth SOAP-ENV:mustUnderstand="1"><username>admin</username><password>admin-secret</password>'
    '<admin>true</admin><impersonate xsi:type="xsd:int">0</impersonate></auth>',
    # an unrelated header before it
    '<ns4:other>x</ns4:other><auth><username>admin</username><password>admin-secret</password>'
    '<admin xsi:type="xsd:int">1</admin></auth>',
])
def test_auth_header_variants(ngnpro_server, header: str) -> None:
    status, root = raw_call(ngnpro_server.url, envelope("Customer", "getCustomers", "<query/>", header_xml=header))
    assert status == 200 and fault_code(root) is None


def test_php_non_admin_login(ngnpro_server, world) -> None:
    res = php_call(ngnpro_server.url, "Customer", "getCustomers", {"query": {"filter": {"username": "r%"}}},
                   auth=login("r2"))
    assert sorted(a["username"] for a in res["accounts"]) == ["r2", "r2c"]
    with pytest.raises(SoapFaultError) as exc:
        php_call(ngnpro_server.url, "Customer", "getAccount", {"id": world["r1"]}, auth=login("r2"))
    assert exc.value.code == 9002
    assert ADMIN["admin"] is True


def test_balance_and_credit_are_not_self_service(ngnpro_server, world) -> None:
    url = ngnpro_server.url
    for who, target in (("r1c", world["r1c"]), ("r1", world["r1"])):
        with pytest.raises(SoapFaultError) as exc:
            call(url, "Customer", "updateAccount", {"account": {"id": target, "balance": 1000.0}}, auth=login(who))
        assert exc.value.code == 9002
    # unchanged values in a round trip are fine, and the reseller sets its customer's credit
    call(url, "Customer", "updateAccount", {"account": {"id": world["r1c"], "balance": 0.0, "city": "Ede"}},
         auth=login("r1c"))
    call(url, "Customer", "updateAccount", {"account": {"id": world["r1c"], "credit": 25.5}}, auth=login("r1"))
    got = call(url, "Customer", "getAccount", {"id": world["r1c"]})
    assert (got["balance"], got["credit"], got["city"]) == (0.0, 25.5, "Ede")


def test_impersonate_cannot_point_outside_the_scope(ngnpro_server, world) -> None:
    url = ngnpro_server.url
    with pytest.raises(SoapFaultError) as exc:
        call(url, "Customer", "updateAccount", {"account": {"id": world["r1c"], "impersonate": world["r2"]}},
             auth=login("r1"))
    assert exc.value.code == 9002
    with pytest.raises(SoapFaultError) as exc:
        call(url, "Customer", "addAccount", {"account": {"username": "imp2", "impersonate": world["r2c"]}},
             auth=login("r1"))
    assert exc.value.code == 9002
    call(url, "Customer", "updateAccount", {"account": {"id": world["r1c"], "impersonate": world["r1"]}},
         auth=login("r1"))
    assert call(url, "Customer", "getAccount", {"id": world["r1c"]})["impersonate"] == world["r1"]
