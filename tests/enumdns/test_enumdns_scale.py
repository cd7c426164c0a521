"""A million numbers: bounded memory, every number still answered (slow: CI skips it)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy import insert

from ngnpro.models import EnumMapping, EnumNumber, EnumRange, open_database
from tests.enumdns.test_enumdns_dig import Dig, naptrs
from tests.helpers import Service, free_port, write_config

COUNT = 1_000_000
CACHE = 100_000


def owner(number: str) -> str:
    return ".".join(reversed(number)) + ".e164.arpa"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.slow
def test_a_million_numbers_in_bounded_memory(tmp_path):
    url = f"sqlite:///{tmp_path / 'msp.sqlite'}"
    engine, factory = open_database(url)
    with factory() as s:
        rng = EnumRange(prefix="31", tld="e164.arpa", serial=1, nameservers="ns1.example.com")
        s.add(rng)
        s.commit()
        rid = rng.id
    with engine.begin() as conn:
        for start in range(0, COUNT, 50_000):
            ids = range(start, start + 50_000)
            conn.execute(insert(EnumNumber), [
                {"id": i + 1, "number": f"31{i * 7:08d}", "tld": "e164.arpa", "range_id": rid} for i in ids])
            conn.execute(insert(EnumMapping), [
                {"number_id": i + 1, "type": "sip", "mapto": f"sip:{i}@example.com", "ttl": 60, "priority": 10}
                for i in ids])
    engine.dispose()
    port = free_port()
    cfg = write_config(tmp_path / "msp.toml", {
        "database": {"url": url},
        "enumdns": {"listen": f"127.0.0.1:{port}", "cache_size": CACHE},
    })
    svc = Service("enumdns", cfg).wait_tcp("127.0.0.1", port, timeout=300)
    try:
        assert f"{CACHE} of {COUNT} numbers in memory" in svc.output()
        dig = Dig(port)
        rnd = random.Random(7)
        for i in [0, COUNT - 1] + rnd.sample(range(COUNT), 30):
            assert naptrs(dig(owner(f"31{i * 7:08d}"), "NAPTR")) == [f'10 10 "u" "E2U+sip" "!^.*$!sip:{i}@example.com!" .']
        for i in rnd.sample(range(COUNT), 5):
            assert dig(owner(f"31{i * 7 + 1:08d}"), "NAPTR")["status"] == "NXDOMAIN"
        # the cache holds CACHE numbers whatever the table holds: memory stays bounded
        assert rss_mb(svc.proc.pid) < 200, rss_mb(svc.proc.pid)
    finally:
        svc.stop()
