"""The presence agent's test doubles: a directory, a recording edge, a clock, and the
``world`` fixture (conftest.py) that puts them around a real SQL store."""

from __future__ import annotations

from dataclasses import dataclass

from ngnpro.models import SipAccount, SipAlias, SipDomain, open_database
from sipproxy.presence.agent import PresenceAgent
from sipproxy.presence.store import PresenceStore
from sipproxy.presence.subscription import Settings
from sipproxy.sip.addressing import Inbound, Listener, Peer
from sipproxy.sip.parser import Response

LISTENER = Listener("udp", "127.0.0.1", 5060)


@dataclass
class Account:
    username: str
    domain: str = "example.com"
    blocked: bool = False

    @property
    def sip_id(self) -> str:
        return f"{self.username}@{self.domain}"


class Directory:
    """bob, carol, dave, eve and u0..u99 of example.com (the rows are in the database too)."""

    accounts = {"bob", "carol", "dave", "eve", *(f"u{i}" for i in range(100))}

    def is_local_domain(self, domain):  # noqa: ANN001, ANN201
        return domain == "example.com"

    def account(self, user, domain):  # noqa: ANN001, ANN201
        return Account(user, domain) if user in self.accounts and domain == "example.com" else None

    def alias(self, user, domain):  # noqa: ANN001, ANN201
        return ("bob", "example.com") if user == "robert" else None


class Txn:
    def __init__(self, request) -> None:  # noqa: ANN001
        self.request, self.user_data = request, None


class Edge:
    def __init__(self) -> None:
        self.responses: list[Response] = []
        self.sent: list[Txn] = []

    def respond(self, txn, response):  # noqa: ANN001, ANN201
        self.responses.append(response)

    def send_request(self, request, dest, branch=None):  # noqa: ANN001, ANN201
        txn = Txn(request)
        self.sent.append(txn)
        return txn

    def resolve(self, uri):  # noqa: ANN001, ANN201
        return Peer("udp", uri.host, uri.port or 5060)

    def connected(self, peer):  # noqa: ANN001, ANN201
        return False

    def listener_for(self, transport, host=None):  # noqa: ANN001, ANN201
        return LISTENER

    def via_for(self, listener, branch):  # noqa: ANN001, ANN201
        return f"SIP/2.0/UDP 127.0.0.1:5060;branch={branch}"

    def branch_suffix(self) -> str:
        return str(len(self.sent))

    def call_later(self, delay, fn, *args):  # noqa: ANN001, ANN201
        fn(*args)

    def notifies(self) -> list:
        out = [t.request for t in self.sent]
        self.sent.clear()
        return out


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make_world(db_url):  # noqa: ANN001, ANN201
    engine, sessions = open_database(db_url)
    with sessions() as s, s.begin():  # the accounts Directory knows, and an alias of bob's
        s.add(SipDomain(domain="example.com"))
        s.flush()
        for user in sorted(Directory.accounts):
            s.add(SipAccount(username=user, domain="example.com", ha1="", ha1b="", ha1_sha256=""))
        s.add(SipAlias(username="robert", domain="example.com", target_username="bob", target_domain="example.com"))
    edge, clock = Edge(), Clock()
    agent = PresenceAgent(edge, PresenceStore(sessions), Directory(),
                          Settings(min_expires=60, max_expires=3600, default_expires=600,
                                   max_per_watcher=3, max_per_presentity=5),
                          xcap_root="http://xcap.example.com/xcap-root/", clock=clock)
    yield agent, edge, sessions, clock
    engine.dispose()


def inbound() -> Inbound:
    return Inbound(b"", Peer("udp", "192.0.2.5", 5062), LISTENER)


