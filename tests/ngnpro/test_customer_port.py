"""CustomerPort methods: success paths and their main faults (API.md 3.4, 4.4)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ngnpro.models.changes import ChangeLogEntry
from tests.ngnpro.harness import SoapFaultError, call, php_call


def add(server, username: str, **fields) -> dict:
    account = {"username": username, "password": "pw", **fields}
    return call(server.url, "Customer", "addAccount", {"account": account}, typed={"account": "CustomerAccount"})


def customers(server, query: dict, method: str = "getCustomers") -> dict:
    return call(server.url, "Customer", method, {"query": query})


def test_add_returns_the_new_account_with_id(ngnpro_server) -> None:
    acc = add(ngnpro_server, "alice", firstName="Alice", balance=10.5, credit=1.0e-5, tel="+31201234567",
              properties=[{"name": "language", "value": "nl", "category": "web", "permission": "customer"}])
    assert acc["id"] > 0 and acc["username"] == "alice" and acc["firstName"] == "Alice"
    assert acc["balance"] == 10.5 and acc["resellerActive"] is False
    assert acc["properties"] == [{"name": "language", "value": "nl", "category": "web", "permission": "customer"}]
    assert len(acc["changeDate"]) == 19


def test_duplicate_username_is_5001(ngnpro_server) -> None:
    add(ngnpro_server, "dup")
    with pytest.raises(SoapFaultError) as exc:
        add(ngnpro_server, "dup", firstName="Other")
    assert exc.value.code == 5001


@pytest.mark.parametrize("username", ["", "has space", "x" * 65, "<b>", None])
def test_invalid_username_is_1040(ngnpro_server, username) -> None:
    with pytest.raises(SoapFaultError) as exc:
        call(ngnpro_server.url, "Customer", "addAccount", {"account": {"username": username}})
    assert exc.value.code == 1040


def test_get_unknown_is_5002_and_numeric_string_id_accepted(ngnpro_server) -> None:
    acc = add(ngnpro_server, "bob")
    got = call(ngnpro_server.url, "Customer", "getAccount", {"id": str(acc["id"])})  # xsd:string "17"
    assert got["username"] == "bob"
    for bad in (999999, 0, -3):
        with pytest.raises(SoapFaultError) as exc:
            call(ngnpro_server.url, "Customer", "getAccount", {"id": bad})
        assert exc.value.code == 5002


def test_update_round_trips_the_record_php_got(ngnpro_server) -> None:
    """The UI sends back the object it received (read-only members included), edited."""
    url = ngnpro_server.url
    acc = add(ngnpro_server, "carol", firstName="Carol",
              properties=[{"name": "a", "value": "1"}, {"name": "b", "value": "2"}])
    php = f"""
        [new SoapParam((function($c) {{
            $a = $c->__soapCall('getAccount', [new SoapParam({acc['id']}, 'id')]);
            $a->firstName = 'Caroline';
            $a->answerTimeout = 5;
            $a->properties = [$a->properties[1], (object)['name' => 'c', 'value' => '3']];
            return $a;
        }})($client), 'account')]
    """
    assert php_call(url, "Customer", "updateAccount", php) is None
    got = call(url, "Customer", "getAccount", {"id": acc["id"]})
    assert got["firstName"] == "Caroline" and got["password"] == "pw"
    assert sorted(p["name"] for p in got["properties"]) == ["b", "c"]


def test_update_keeps_password_when_empty_and_checks_username(ngnpro_server) -> None:
    a = add(ngnpro_server, "dave")
    add(ngnpro_server, "erin")
    call(ngnpro_server.url, "Customer", "updateAccount", {"account": {"id": a["id"], "password": "", "city": "Delft"}})
    got = call(ngnpro_server.url, "Customer", "getAccount", {"id": a["id"]})
    assert got["password"] == "pw" and got["city"] == "Delft"
    with pytest.raises(SoapFaultError) as exc:
        call(ngnpro_server.url, "Customer", "updateAccount", {"account": {"id": a["id"], "username": "erin"}})
    assert exc.value.code == 5001
    with pytest.raises(SoapFaultError) as exc:
        call(ngnpro_server.url, "Customer", "updateAccount", {"account": {"id": 424242, "city": "x"}})
    assert exc.value.code == 5002


def test_delete(ngnpro_server) -> None:
    a = add(ngnpro_server, "frank", properties=[{"name": "x", "value": "y"}])
    assert call(ngnpro_server.url, "Customer", "deleteAccount", {"id": a["id"]}) is None
    with pytest.raises(SoapFaultError) as exc:
        call(ngnpro_server.url, "Customer", "getAccount", {"id": a["id"]})
    assert exc.value.code == 5002
    with pytest.raises(SoapFaultError) as exc:
        call(ngnpro_server.url, "Customer", "deleteAccount", {"id": a["id"]})
    assert exc.value.code == 5002


def test_reseller_with_customers_cannot_be_deleted(ngnpro_server) -> None:
    r = add(ngnpro_server, "res", resellerActive=1)
    add(ngnpro_server, "sub", reseller=r["id"])
    with pytest.raises(SoapFaultError) as exc:
        call(ngnpro_server.url, "Customer", "deleteAccount", {"id": r["id"]})
    assert exc.value.code == 1040
    with pytest.raises(SoapFaultError) as exc:
        add(ngnpro_server, "orphan", reseller=987654)
    assert exc.value.code == 1040


def test_get_customers_filter_order_range(ngnpro_server) -> None:
    for i, (name, city) in enumerate([("ann", "Delft"), ("anna", "Delft"), ("bert", "Gouda"), ("anton", "Breda")]):
        add(ngnpro_server, name, city=city, organization=f"org{i}")
    res = customers(ngnpro_server, {"filter": {"username": "an%"}, "orderBy": {"attribute": "username",
                                                                                "direction": "DESC"}})
    assert res["total"] == 3 and [a["username"] for a in res["accounts"]] == ["anton", "anna", "ann"]
    res = customers(ngnpro_server, {"filter": {"username": "an%", "city": "Delft"},
                                    "orderBy": {"attribute": "username", "direction": "ASC"},
                                    "range": {"start": 1, "count": 1}})
    assert res["total"] == 2 and [a["username"] for a in res["accounts"]] == ["anna"]
    res = customers(ngnpro_server, {"filter": {"username": "", "customer": 0},
                                    "orderBy": {"attribute": "noSuchAttribute", "direction": "ASC"}})
    assert res["total"] == 4 and len(res["accounts"]) == 4
    res = customers(ngnpro_server, {"filter": {"username": "b_rt"}})
    assert [a["username"] for a in res["accounts"]] == ["bert"]
    res = customers(ngnpro_server, {})
    assert res["total"] == 4
    res = customers(ngnpro_server, {"range": {"start": 10, "count": 20}})
    assert res == {"total": 4, "accounts": []}


def test_get_resellers(ngnpro_server) -> None:
    r = add(ngnpro_server, "reseller1", resellerActive=True)
    c = add(ngnpro_server, "plain1")
    res = customers(ngnpro_server, {"filter": {}}, "getResellers")
    assert [a["id"] for a in res["accounts"]] == [r["id"]]
    # the UI fetches the login account itself with filter.customer, reseller or not
    res = customers(ngnpro_server, {"filter": {"customer": c["id"]}}, "getResellers")
    assert [a["id"] for a in res["accounts"]] == [c["id"]]
    res = customers(ngnpro_server, {"filter": {"only_resellers": "1"}})
    assert [a["id"] for a in res["accounts"]] == [r["id"]]


def test_properties(ngnpro_server) -> None:
    url = ngnpro_server.url
    a = add(ngnpro_server, "props", properties=[{"name": "sip_credit", "value": "10", "category": "credit",
                                                 "permission": "admin"}])
    call(url, "Customer", "setProperties", {"customer": a["id"], "properties": [
        {"name": "records_per_page", "value": "50", "category": "web", "permission": "customer"}]})
    props = call(url, "Customer", "getProperties", {"customer": a["id"]})
    assert {p["name"]: p["value"] for p in props} == {"sip_credit": "10", "records_per_page": "50"}
    call(url, "Customer", "setProperties", {"customer": a["id"], "properties": [{"name": "sip_credit", "value": "20"}]})
    props = call(url, "Customer", "getProperties", {"customer": a["id"]})
    assert {p["name"]: (p["value"], p["permission"]) for p in props}["sip_credit"] == ("20", "admin")
    with pytest.raises(SoapFaultError) as exc:
        call(url, "Customer", "setProperties", {"customer": a["id"], "properties": [{"value": "nameless"}]})
    assert exc.value.code == 1040
    with pytest.raises(SoapFaultError) as exc:
        call(url, "Customer", "setProperties", {"customer": a["id"], "properties": [{"name": "x", "permission": "god"}]})
    assert exc.value.code == 1040
    with pytest.raises(SoapFaultError) as exc:
        call(url, "Customer", "getProperties", {"customer": 31337})
    assert exc.value.code == 5002
    assert call(url, "Customer", "getProperties", {"customer": add(ngnpro_server, "noprops")["id"]}) == []


def test_writes_are_logged_for_change_propagation_and_faults_are_not(ngnpro_server) -> None:
    def changes() -> list[tuple[str, str]]:
        with ngnpro_server.sessionmaker()() as s:
            return [(c.topic, c.key) for c in s.execute(select(ChangeLogEntry).order_by(ChangeLogEntry.id)).scalars()]

    a = add(ngnpro_server, "logged")
    call(ngnpro_server.url, "Customer", "updateAccount", {"account": {"id": a["id"], "city": "Ede"}})
    with pytest.raises(SoapFaultError):
        add(ngnpro_server, "logged")
    call(ngnpro_server.url, "Customer", "deleteAccount", {"id": a["id"]})
    assert changes() == [("customer", str(a["id"]))] * 3


def test_property_limits(ngnpro_server) -> None:
    url = ngnpro_server.url
    a = add(ngnpro_server, "limits")
    long_value = "v" * 5000
    call(url, "Customer", "setProperties", {"customer": a["id"], "properties": [{"name": "auth_token",
                                                                                "value": long_value}]})
    assert call(url, "Customer", "getProperties", {"customer": a["id"]})[0]["value"] == long_value
    for bad in ({"name": "n" * 129, "value": "x"}, {"name": "x", "category": "c" * 33}):
        with pytest.raises(SoapFaultError) as exc:
            call(url, "Customer", "setProperties", {"customer": a["id"], "properties": [bad]})
        assert exc.value.code == 1040


def test_a_fault_late_in_a_call_rolls_back_its_earlier_changes(ngnpro_server) -> None:
    a = add(ngnpro_server, "atomic", firstName="Before", properties=[{"name": "keep", "value": "1"}])
    with pytest.raises(SoapFaultError) as exc:
        call(ngnpro_server.url, "Customer", "updateAccount", {"account": {
            "id": a["id"], "firstName": "After",
            "properties": [{"name": "new", "value": "x"}, {"name": "bad", "permission": "root"}]}})
    assert exc.value.code == 1040
    got = call(ngnpro_server.url, "Customer", "getAccount", {"id": a["id"]})
    assert got["firstName"] == "Before" and [p["name"] for p in got["properties"]] == ["keep"]
