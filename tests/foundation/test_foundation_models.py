"""The shared schema on every backend: migrations, uniqueness, cascades, unicode, round trips."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError

from ngnpro import models as m
from ngnpro.models.database import current_revision, open_database
from tests.helpers import write_config


@pytest.fixture
def db(db_url):
    engine, Session = open_database(db_url)
    yield Session
    engine.dispose()


def _domain_with_account(session, domain="example.com", username="alice"):
    d = m.SipDomain(domain=domain)
    a = m.SipAccount(username=username, domain=domain, password="pw", ha1="0" * 32)
    session.add_all([d, a])
    session.flush()
    return d, a


def test_upgrade_creates_every_table_and_is_idempotent(empty_db_url, tmp_path):
    db_url = empty_db_url
    cfg = write_config(tmp_path / "c.toml", {"database": {"url": db_url}})
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", "ngnpro", "db", "upgrade", "--config", str(cfg)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    engine, _ = open_database(db_url, migrate=False)
    try:
        tables = set(inspect(engine).get_table_names())
        assert set(m.Base.metadata.tables) <= tables
        assert current_revision(engine) is not None
        snapshot = {t: [c["name"] for c in inspect(engine).get_columns(t)] for t in sorted(tables)}
    finally:
        engine.dispose()
    # a third run through the service start path changes nothing
    engine, _ = open_database(db_url)
    try:
        assert {t: [c["name"] for c in inspect(engine).get_columns(t)]
                for t in sorted(inspect(engine).get_table_names())} == snapshot
    finally:
        engine.dispose()


def test_account_is_unique_per_username_and_domain(db):
    with db() as s:
        _domain_with_account(s)
        s.add(m.SipDomain(domain="other.org"))
        s.add(m.SipAccount(username="alice", domain="other.org"))  # same user, other domain: fine
        s.commit()
    with db() as s:
        s.add(m.SipAccount(username="alice", domain="example.com"))
        with pytest.raises(IntegrityError):
            s.commit()


@pytest.mark.parametrize(
    "make",
    [
        lambda: [m.SipAlias(username="a", domain="example.com", target_username="x", target_domain="y"),
                 m.SipAlias(username="a", domain="example.com", target_username="z", target_domain="y")],
        lambda: [m.EnumNumber(number="31201234567", tld="e164.arpa"),
                 m.EnumNumber(number="31201234567", tld="e164.arpa")],
        lambda: [m.SipDomain(domain="dup.example"), m.SipDomain(domain="dup.example")],
        lambda: [m.Customer(username="rs1"), m.Customer(username="rs1")],
        lambda: [m.TrustedPeer(ip="10.0.0.1"), m.TrustedPeer(ip="10.0.0.1")],
        lambda: [m.DnsZone(name="z.example"), m.DnsZone(name="z.example")],
        lambda: [m.EnumRange(prefix="3120", tld="e164.arpa"), m.EnumRange(prefix="3120", tld="e164.arpa")],
        lambda: [m.EmergencyMapping(region="ams", number="112", destination="sip:a@b"),
                 m.EmergencyMapping(region="ams", number="112", destination="sip:c@d")],
    ],
    ids=["alias", "e164-per-tld", "domain", "customer", "trusted-peer", "zone", "enum-range", "emergency"],
)
def test_unique_constraints(db, make):
    first, second = make()
    with db() as s:
        s.add(first)
        s.commit()
    with db() as s:
        s.add(second)
        with pytest.raises(IntegrityError):
            s.commit()


def test_same_e164_number_in_two_trees_is_allowed(db):
    with db() as s:
        s.add_all([m.EnumNumber(number="31201234567", tld="e164.arpa"),
                   m.EnumNumber(number="31201234567", tld="e164.private")])
        s.commit()
        assert s.scalar(select(func.count()).select_from(m.EnumNumber)) == 2


def test_deleting_an_account_cascades_to_everything_it_owns(db):
    with db() as s:
        _, a = _domain_with_account(s)
        a.groups.append(m.SipAccountGroup(name="free-pstn"))
        a.properties.append(m.SipAccountProperty(name="language", value="nl"))
        a.acl.append(m.SipAccountAcl(ip="192.0.2.0", mask=24))
        a.diversions.append(m.CallDiversion(condition="FBUS", uri="sip:vm@example.com"))
        a.accept_rules.append(m.AcceptRule(start="09:00", stop="17:00", days=31, groups="everybody"))
        a.reject_members.append(m.RejectMember(uri="sip:spam@example.org"))
        a.barring_prefixes.append(m.BarringPrefix(prefix="+900"))
        a.phonebook.append(m.PhonebookEntry(uri="sip:bob@example.com", name="Bob"))
        a.credit_history.append(m.CreditEntry(action="add", value=Decimal("5"), balance=Decimal("5")))
        s.commit()
        account_id = a.id
    with db() as s:
        # Delete through Core, not the ORM, to prove the database itself cascades.
        s.execute(m.SipAccount.__table__.delete().where(m.SipAccount.id == account_id))
        s.commit()
        for model in (m.SipAccountGroup, m.SipAccountProperty, m.SipAccountAcl, m.CallDiversion,
                      m.AcceptRule, m.RejectMember, m.BarringPrefix, m.PhonebookEntry, m.CreditEntry):
            assert s.scalar(select(func.count()).select_from(model)) == 0, model.__name__


def test_deleting_a_domain_deletes_its_accounts_and_acl(db):
    with db() as s:
        d, _ = _domain_with_account(s)
        d.acl.append(m.SipDomainAcl(ip="192.0.2.0", mask=24))
        s.commit()
    with db() as s:
        s.execute(m.SipDomain.__table__.delete().where(m.SipDomain.domain == "example.com"))
        s.commit()
        assert s.scalar(select(func.count()).select_from(m.SipAccount)) == 0
        assert s.scalar(select(func.count()).select_from(m.SipDomainAcl)) == 0


def test_range_zone_and_carrier_cascades(db):
    with db() as s:
        r = m.EnumRange(prefix="3120", tld="e164.arpa")
        n = m.EnumNumber(number="31201234567", tld="e164.arpa", range=r)
        n.mappings.append(m.EnumMapping(type="sip", mapto="sip:alice@example.com"))
        z = m.DnsZone(name="example.com")
        z.records.append(m.DnsRecord(name="_sip._udp", type="SRV", value="0 5060 sip.example.com", priority=10))
        c = m.Carrier(name="carrier")
        g = m.Gateway(name="gw", ip="192.0.2.10", carrier=c)
        g.rules.append(m.GatewayRule(prefix="0031", strip=2))
        c.routes.append(m.Route(prefix="0031", priority=1))
        s.add_all([r, z, c])
        s.commit()
        s.execute(m.EnumRange.__table__.delete())
        s.execute(m.DnsZone.__table__.delete())
        s.execute(m.Carrier.__table__.delete())
        s.commit()
        for model in (m.EnumNumber, m.EnumMapping, m.DnsRecord, m.Gateway, m.GatewayRule, m.Route):
            assert s.scalar(select(func.count()).select_from(model)) == 0, model.__name__


def test_customer_properties_cascade(db):
    with db() as s:
        c = m.Customer(username="reseller1", reseller_active=True)
        c.properties.append(m.CustomerProperty(name="pstn_access", value="1", category="sip"))
        s.add(c)
        s.commit()
        s.execute(m.Customer.__table__.delete())
        s.commit()
        assert s.scalar(select(func.count()).select_from(m.CustomerProperty)) == 0


UNICODE_NAMES = ["Zoë Ångström", "Łukasz Żółć", "渡辺 太郎", "Σωκράτης", "😀 emoji"]


def test_unicode_names_survive(db):
    with db() as s:
        _, a = _domain_with_account(s)
        a.first_name, a.last_name = UNICODE_NAMES[0], UNICODE_NAMES[2]
        c = m.Customer(username="ü-user", first_name=UNICODE_NAMES[1], organization=UNICODE_NAMES[3],
                       address=UNICODE_NAMES[4])
        s.add(c)
        s.commit()
    with db() as s:
        a = s.scalars(select(m.SipAccount)).one()
        assert (a.first_name, a.last_name) == (UNICODE_NAMES[0], UNICODE_NAMES[2])
        c = s.scalars(select(m.Customer).where(m.Customer.username == "ü-user")).one()
        assert (c.first_name, c.organization, c.address) == (UNICODE_NAMES[1], UNICODE_NAMES[3], UNICODE_NAMES[4])


def _sample_rows():
    """One fully populated instance of every model, in dependency order."""
    now = dt.datetime(2026, 11, 26, 12, 30, 15)
    return [
        m.Customer(id=7, username="cust", password="pw", reseller=3, reseller_active=True, balance=Decimal("12.5"),
                   credit=Decimal("1.2500"), first_name="C", country="NL"),
        m.CustomerProperty(customer_id=7, name="pstn_access", value="1", category="sip", permission="admin"),
        m.SipDomain(id=6, domain="example.com", customer=7, reseller=3, verify_cert=True),
        m.SipDomainAcl(domain_id=6, ip="198.51.100.0", mask=24, tag="edge", position=1),
        m.SipAccount(id=11, username="alice", domain="example.com", password="s3cret", ha1="a" * 32, ha1b="b" * 32,
                     ha1_sha256="c" * 64, rpid="+31201234567", quickdial_prefix="3120123", region="ams",
                     prepaid=True, balance=Decimal("3.1415"), quota=50, call_limit=2, timeout=60, owner=7,
                     customer=7, reseller=3, timezone="Europe/Amsterdam"),
        m.SipAccountGroup(account_id=11, name="free-pstn"),
        m.SipAccountProperty(account_id=11, name="language", value="nl"),
        m.SipAccountAcl(account_id=11, ip="192.0.2.0", mask=24, tag="office"),
        m.SipAlias(username="al", domain="example.com", target_username="alice", target_domain="example.com", owner=7),
        m.TrustedPeer(ip="192.0.2.1", description="pbx", strip=1, prefix="00", msteams=True, enum_lookup=False),
        m.CallDiversion(account_id=11, condition="FNOA", uri="<voice-mailbox>"),
        m.AcceptRule(account_id=11, persistent=False, groups="nobody", duration=30, set_at=now),
        m.RejectMember(account_id=11, uri="sip:x@y"),
        m.BarringPrefix(account_id=11, prefix="+900"),
        m.PhonebookEntry(account_id=11, uri="sip:bob@example.com", name="Bob", group="friends"),
        m.CreditEntry(account_id=11, date=now, action="Add balance", value=Decimal("10"), balance=Decimal("13.1415"),
                      session="call-1"),
        m.PrepaidCard(number="123456", value=Decimal("20"), used_by="alice@example.com", used_date=now),
        m.EmergencyMapping(region="ams", number="112", destination="sip:112@psap.example"),
        m.EnumRange(id=5, prefix="3120", tld="e164.arpa", ttl=600, min_digits=11, max_digits=11, size=10000,
                    serial=2026112601, nameservers="ns1.example.com ns2.example.com"),
        m.EnumNumber(id=9, number="31201234567", tld="e164.arpa", range_id=5, owner=7, info="main"),
        m.EnumMapping(number_id=9, type="sip", mapto="sip:alice@example.com", ttl=300, priority=5),
        m.DnsZone(id=4, name="example.com", serial=2026112601, email="hostmaster@example.com", nameservers="ns1.x"),
        m.DnsRecord(zone_id=4, name="_sip._udp", type="SRV", value="5 5060 sip.example.com", priority=10, ttl=60),
        m.Carrier(id=2, name="Carrier", reseller=3),
        m.Gateway(id=3, carrier_id=2, name="gw1", ip="192.0.2.20", port=5080, transport="udp"),
        m.GatewayRule(gateway_id=3, prefix="0031", strip=2, prepend="+31", min_length=8, max_length=15),
        m.Route(carrier_id=2, prefix="0031", originator="peer1", priority=1),
        m.Location(username="alice", domain="example.com", contact="sip:alice@192.0.2.5:5062;ob",
                   contact_hash=m.contact_key("sip:alice@192.0.2.5:5062;ob"), received="udp:198.51.100.1:34567",
                   socket="udp:127.0.0.1:5060", path="<sip:edge@192.0.2.2;lr>", expires=now, q=0.5,
                   call_id="reg-1", cseq=3, user_agent="phone/1.0", instance="<urn:uuid:1>", reg_id=1,
                   behind_nat=True),
        m.Dialog(call_id="call-1", from_tag="ft", to_tag="tt", caller="alice@example.com", callee="bob@example.com",
                 state="confirmed", route_set="<sip:127.0.0.1;lr>", connect_time=now, deadline=now),
        m.AccountingRecord(call_id="call-1", from_tag="ft", to_tag="tt", status=200, caller="alice@example.com",
                           callee="bob@example.com", start_time=now, stop_time=now, duration=61,
                           price=Decimal("0.1234")),
        m.MediaSession(call_id="call-1", from_tag="ft", to_tag="tt", relay="127.0.0.1:25060",
                       streams='[{"media_type": "audio"}]', start_time=now, end_time=now, duration=61,
                       reason="bye"),
        m.ChangeLogEntry(topic="sip_account", key="alice@example.com"),
        m.XcapDocument(auid="pres-rules", xui="alice@example.com", filename="index",
                       document="<ruleset xmlns='urn:ietf:params:xml:ns:common-policy'/>\u00e9" * 3000,
                       etag="e1", updated=now),
        m.RatingRate(profile="default", prefix="3120", name="Amsterdam", price_per_minute=Decimal("0.0125"),
                     connect_fee=Decimal("0.0500"), increment=6, min_duration=30),
        m.RatingEntityProfile(entity="subscriber://alice@example.com", profile_weekday="wd", profile_weekday_alt="wda",
                              profile_weekend="we", profile_weekend_alt="wea", timezone="Europe/Amsterdam",
                              customer=7, reseller=3),
        m.PresencePublication(presentity="alice@example.com", event="presence", etag="pe1",
                              document="<presence/>\u00e9" * 2000, content_type="application/pidf+xml",
                              expires_at=1_900_000_000, updated=now),
        m.PresenceSubscription(call_id="sub-1", from_tag="ft", to_tag="pa-tt", event="presence", event_id="",
                               presentity="alice@example.com", watcher="bob@example.com",
                               watcher_uri="<sip:bob@example.com>", presentity_uri="<sip:alice@example.com>",
                               remote_target="sip:bob@192.0.2.5:5062", route_set="<sip:192.0.2.2;lr>",
                               contact="<sip:alice@127.0.0.1:5060>", source="udp:192.0.2.5:5062",
                               local_cseq=3, remote_cseq=2, state="active", reason="", action="allow",
                               transformations="provide-all-attributes", version=4,
                               resources="\nbob@example.com\ncarol@example.net\n",
                               document="<presence/>\u00e9" * 2000,
                               expires_at=1_900_000_000, created=now),
    ]


def _columns(obj):
    return {c.key: getattr(obj, c.key) for c in inspect(type(obj)).column_attrs}


def test_round_trip_of_every_model(db):
    rows = _sample_rows()
    assert {type(r) for r in rows} == {mapper.class_ for mapper in m.Base.registry.mappers}
    with db() as s:
        for row in rows:
            s.add(row)
            s.flush()
        s.commit()
        expected = [(type(r), inspect(r).identity, _columns(r)) for r in rows]
    with db() as s:
        for model, identity, cols in expected:
            loaded = s.get(model, identity)
            assert loaded is not None, model.__name__
            got = _columns(loaded)
            for key, value in cols.items():
                if isinstance(value, Decimal):
                    assert Decimal(got[key]) == value, (model.__name__, key)
                elif isinstance(value, float):
                    assert got[key] == pytest.approx(value), (model.__name__, key)
                else:
                    assert got[key] == value, (model.__name__, key)


def test_migrations_build_the_schema_the_models_describe(empty_db_url):
    """Several branches add migrations: the chain must end in exactly the models' tables,
    columns and indexes (what autogenerate would still find is a missing migration)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from ngnpro.models.database import alembic_config

    assert len(ScriptDirectory.from_config(alembic_config(empty_db_url)).get_heads()) == 1
    engine, _ = open_database(empty_db_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": False})
            diff = [d for d in compare_metadata(ctx, m.Base.metadata)
                    if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "alembic_version")]
    finally:
        engine.dispose()
    assert diff == []
