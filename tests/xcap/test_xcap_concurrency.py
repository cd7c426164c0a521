"""Concurrent writers: each write is one transaction on the current document, so
simultaneous element PUTs all land, and of simultaneous creations with
``If-None-Match: *`` exactly one wins."""

from __future__ import annotations

import threading

from tests.xcap.conftest import client_for
from tests.xcap.documents import RESOURCE_LISTS, RL_NS

RL = "application/resource-lists+xml"
N = 8


def _together(fn) -> list:
    barrier = threading.Barrier(N)
    results: list = [None] * N

    def run(i: int) -> None:
        barrier.wait()
        results[i] = fn(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_simultaneous_element_puts_all_land(xcap_server) -> None:
    clients = [client_for(xcap_server, "alice@example.com") for _ in range(N)]
    assert clients[0].put(clients[0].user_path("resource-lists"), RESOURCE_LISTS, RL).status == 201

    def add(i: int) -> int:
        node = f'resource-lists/list[@name="work"]/entry[@uri="sip:u{i}@example.com"]'
        c = clients[i]
        return c.put(c.user_path("resource-lists", node=node), f'<entry uri="sip:u{i}@example.com"/>',
                     "application/xcap-el+xml").status

    assert _together(add) == [201] * N
    doc = clients[0].get(clients[0].user_path("resource-lists")).xml()
    uris = {e.get("uri") for e in doc.iter(f"{{{RL_NS}}}entry")}
    assert {f"sip:u{i}@example.com" for i in range(N)} <= uris


def test_one_creation_wins(xcap_server) -> None:
    clients = [client_for(xcap_server, "alice@example.com") for _ in range(N)]

    def create(i: int) -> int:
        c = clients[i]
        return c.put(c.user_path("resource-lists"), RESOURCE_LISTS.replace("Friends", f"F{i}"), RL,
                     headers={"If-None-Match": "*"}).status

    statuses = _together(create)
    assert sorted(statuses) == [201] + [412] * (N - 1)


def test_two_workers_share_the_documents(tmp_path, db_url) -> None:
    """With ``workers = 2`` the writers are two processes: creations still race to one
    winner, element PUTs all land, on each database."""
    from tests.ngnpro.conftest import start_ngnpro
    from tests.xcap.conftest import MAX_DOCUMENT, ROOT, provision

    server = start_ngnpro(tmp_path, db_url, xcap_root=ROOT + "/", xcap_max_document=MAX_DOCUMENT, workers=2)
    try:
        provision(server)
        test_one_creation_wins(server)
        _element_puts_all_land(server)
    finally:
        server.service.stop()
        server.close()


def _element_puts_all_land(server) -> None:
    clients = [client_for(server, "alice@example.com") for _ in range(N)]

    def add(i: int) -> int:
        node = f'resource-lists/list[@name="friends"]/entry[@uri="sip:w{i}@example.com"]'
        c = clients[i]
        return c.put(c.user_path("resource-lists", node=node), f'<entry uri="sip:w{i}@example.com"/>',
                     "application/xcap-el+xml").status

    assert _together(add) == [201] * N
