"""``python -m ngnpro.rating``: CSV import (all or nothing, bad lines named) and export."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest
from sqlalchemy import select

from ngnpro import models as m
from ngnpro.models.database import open_database
from ngnpro.rating import main
from tests.helpers import write_config

GOOD = """\
# a comment, then the header
profile,prefix,name,price_per_minute,connect_fee,increment,min_duration
default,,Rest of the world,0.5000,0,60,0
default,+31,Netherlands,0.0200,0.0100,60,0

default,0031 6,Netherlands mobile,0.1500,0,1,30
cheap,44,"United Kingdom, all",0.0300,,6,
"""


@pytest.fixture
def setup(db_url, tmp_path):
    config = write_config(tmp_path / "msp.toml", {"database": {"url": db_url}})
    engine, Session = open_database(db_url)
    yield config, Session, tmp_path
    engine.dispose()


def _rates(Session):
    with Session() as s:
        return {(r.profile, r.prefix): (r.name, Decimal(r.price_per_minute), Decimal(r.connect_fee), r.increment,
                                        r.min_duration)
                for r in s.scalars(select(m.RatingRate))}


def _write(tmp_path, text, name="rates.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_import_then_export_round_trips(setup, capsys):
    config, Session, tmp = setup
    assert main(["import", _write(tmp, GOOD), "--config", str(config)]) == 0
    assert "4 rate(s)" in capsys.readouterr().out
    rates = _rates(Session)
    assert rates == {
        ("default", ""): ("Rest of the world", Decimal("0.5"), Decimal(0), 60, 0),
        ("default", "31"): ("Netherlands", Decimal("0.02"), Decimal("0.01"), 60, 0),
        ("default", "316"): ("Netherlands mobile", Decimal("0.15"), Decimal(0), 1, 30),
        ("cheap", "44"): ("United Kingdom, all", Decimal("0.03"), Decimal(0), 6, 0),
    }
    with Session() as s:
        assert s.scalar(select(m.ChangeLogEntry.key).where(m.ChangeLogEntry.topic == "rating").limit(1))
    out = tmp / "out.csv"
    assert main(["export", str(out), "--config", str(config)]) == 0
    exported = out.read_text()
    assert exported.splitlines()[0] == "profile,prefix,name,price_per_minute,connect_fee,increment,min_duration"
    assert 'cheap,44,"United Kingdom, all",0.0300,0.0000,6,0' in exported
    # the export imports back into an empty table as the same rates
    with Session() as s, s.begin():
        s.execute(m.RatingRate.__table__.delete())
    assert main(["import", str(out), "--config", str(config)]) == 0
    assert _rates(Session) == rates


def test_bad_rows_are_named_by_line_and_nothing_is_written(setup, capsys):
    config, Session, tmp = setup
    assert main(["import", _write(tmp, GOOD), "--config", str(config)]) == 0
    before = _rates(Session)
    bad = """\
prefix,price_per_minute,increment,connect_fee
31,0.0100,60,0
abc,0.0100,60,0
32,-1,60,0
33,0.01,0,0
34,0.00001,60,0
31,0.0300,60,0
35,0.01,60
36,lots,60,0
"""
    assert main(["import", _write(tmp, bad), "--config", str(config), "--replace"]) == 1
    err = capsys.readouterr().err
    for line, words in [(3, "'abc'"), (4, "price_per_minute '-1'"), (5, "increment 0"), (6, "4 decimals"),
                        (7, "already on line 2"), (8, "3 field(s)"), (9, "'lots' is not a number")]:
        assert f"rates.csv:{line}: " in err and words in err, (line, err)
    assert "rates.csv:2:" not in err and "nothing imported" in err
    assert _rates(Session) == before


@pytest.mark.parametrize("text, message", [
    ("", "header row is required"),
    ("prefix,price\n31,1\n", "unknown column(s) price"),
    ("prefix,name\n31,x\n", "missing column(s) price_per_minute"),
    ("prefix,price_per_minute\n", "no rates after the header"),
    ("prefix,price_per_minute,prefix\n1,1,1\n", "given twice: prefix"),
])
def test_bad_files_are_rejected(setup, capsys, text, message):
    config, Session, tmp = setup
    assert main(["import", _write(tmp, text), "--config", str(config)]) == 1
    assert message in capsys.readouterr().err
    assert _rates(Session) == {}


def test_profile_option_and_replace(setup, capsys):
    config, Session, tmp = setup
    assert main(["import", _write(tmp, GOOD), "--config", str(config)]) == 0
    # --profile puts every row in that profile; --replace drops that profile's other rates only
    gold = "prefix;price_per_minute;name\n31;0,5;x\n"  # semicolons are accepted; a comma decimal is not
    assert main(["import", _write(tmp, gold), "--config", str(config), "--profile", "gold"]) == 1
    assert "price_per_minute '0,5' is not a number" in capsys.readouterr().err
    gold = "prefix;price_per_minute;name\n31;0.5;x\n44;0.6;y\n"
    assert main(["import", _write(tmp, gold), "--config", str(config), "--profile", "gold"]) == 0
    assert main(["import", _write(tmp, "prefix,price_per_minute\n31,0.7\n"), "--config", str(config),
                 "--profile", "gold", "--replace"]) == 0
    assert "1 changed, 1 removed" in capsys.readouterr().out
    rates = _rates(Session)
    assert rates[("gold", "31")][1] == Decimal("0.7") and ("gold", "44") not in rates
    assert ("cheap", "44") in rates and ("default", "316") in rates
    # a row naming another profile than --profile is refused
    assert main(["import", _write(tmp, "profile,prefix,price_per_minute\ncheap,1,1\n"), "--config", str(config),
                 "--profile", "gold"]) == 1
    assert "differs from --profile 'gold'" in capsys.readouterr().err
    assert main(["import", _write(tmp, "prefix,price_per_minute\n1,1\n"), "--config", str(config),
                 "--profile", "bad name"]) == 1
    assert "--profile: profile 'bad name'" in capsys.readouterr().err


def test_module_runs_and_reports_a_bad_config(setup, tmp_path):
    config, Session, tmp = setup
    path = _write(tmp, GOOD)
    proc = subprocess.run([sys.executable, "-m", "ngnpro.rating", "import", path, "--config", str(config)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "ngnpro.rating", "export", "--config", str(config),
                           "--profile", "cheap"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.splitlines()[1:] == ['cheap,44,"United Kingdom, all",0.0300,0.0000,6,0']
    proc = subprocess.run([sys.executable, "-m", "ngnpro.rating", "import", path, "--config", str(tmp / "nope.toml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "nope.toml not found" in proc.stderr


def test_quote_shows_how_a_call_is_rated(setup, capsys):
    config, Session, tmp = setup
    assert main(["import", _write(tmp, GOOD), "--config", str(config)]) == 0
    with Session() as s:
        s.add_all([m.SipDomain(domain="example.com"),
                   m.SipAccount(username="alice", domain="example.com", customer=7, reseller=3, prepaid=True,
                                balance=Decimal("1.0000"), timezone="Europe/Amsterdam"),
                   m.RatingEntityProfile(entity="customer://7", profile_weekday="cheap")])
        s.commit()
    capsys.readouterr()
    # Monday: customer 7's "cheap" has no 31 prefix, so default's Netherlands rate applies
    assert main(["quote", "alice@example.com", "+31201234567", "--seconds", "61", "--at", "2026-12-07T12:00:00",
                 "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "entity    customer://7" in out and "profiles  cheap, default (weekday)" in out
    assert "profile default, prefix 31 (Netherlands): 0.0200/min, connect fee 0.0100" in out
    assert "price     61 s: 0.0500" in out and "covered by the balance: yes" in out
    assert "longest   2940 s on the balance" in out  # 0.01 + 49 minutes * 0.02 = 0.99 <= 1.00 < 1.01
    assert main(["quote", "alice@example.com", "+441234", "--config", str(config)]) == 0
    assert "profile cheap, prefix 44" in capsys.readouterr().out
    assert main(["quote", "nobody@example.com", "+31", "--config", str(config)]) == 1
    assert "no SIP account nobody@example.com" in capsys.readouterr().err
    assert main(["quote", "alice@example.com", "+31", "--at", "soon", "--config", str(config)]) == 2
