"""Two workers with a location cache: a contact added or removed through one worker is seen
at once by calls that the other worker routes from its cache.

Plain UDP sockets play the phones, so that the worker handling each message is known: a
call's Call-ID decides its worker (``Core.owner_of``), so alice's calls go to worker 0; a
REGISTER stays with the worker the kernel gave it by the sender's address, so bob's phones
are sockets whose REGISTERs worker 1 logged.  ``location_cache`` is long (60 s), so only the change counter worker 1
bumps (``sipproxy.registrar.cache.ChangeCounters``, in memory both workers map) can make worker
0 see bob's new or removed contact; a contact written by "another proxy"
(a LocationStore of this test on the same database) is *not* seen by worker 0 until then,
which shows that worker 0 really answers from its cache.
"""

from __future__ import annotations

import itertools
import select
import socket
import time
import zlib

from ngnpro.models import open_database
from sipproxy.registrar.location import Binding, LocationStore
from sipproxy.sip.digest import compute_response, ha1, parse_auth_params

from .sipp_support import DOMAIN, USERS, ProxyProcess, provision

_ids = itertools.count()


def _call_id(worker: int, kind: str) -> str:
    """A fresh Call-ID that a 2-worker proxy hands to ``worker``."""
    while True:
        cid = f"{kind}-{next(_ids)}-{time.time_ns()}"
        if zlib.crc32(cid.encode()) % 2 == worker:
            return cid


class Msg:
    def __init__(self, text: str) -> None:
        head, _, self.body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        self.start = lines[0]
        self.headers = [(n.strip().lower(), v.strip()) for n, _, v in (ln.partition(":") for ln in lines[1:])]

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name]

    def get(self, name: str) -> str:
        return self.all(name)[0]

    @property
    def status(self) -> int:
        return int(self.start.split()[1]) if self.start.startswith("SIP/2.0") else 0

    @property
    def method(self) -> str:
        return self.start.split()[0] if not self.start.startswith("SIP/2.0") else self.get("cseq").split()[1]


class Phone:
    """A UDP user agent on 127.0.0.1 talking to the proxy."""

    def __init__(self, proxy_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.proxy = ("127.0.0.1", proxy_port)

    def close(self) -> None:
        self.sock.close()

    def send(self, text: str) -> None:
        self.sock.sendto(text.encode(), self.proxy)

    def recv(self, timeout: float = 10.0) -> Msg | None:
        self.sock.settimeout(timeout)
        try:
            return Msg(self.sock.recv(65535).decode())
        except TimeoutError:
            return None

    def expect(self, pred, timeout: float = 10.0) -> Msg:  # noqa: ANN001
        """The next message ``pred`` accepts (100 Trying and the like skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.01, deadline - time.monotonic()))
            assert msg is not None, "no message came"
            if pred(msg):
                return msg

    def reply(self, req: Msg, status: str, extra: str = "") -> None:
        keep = "".join(f"{n}: {v}\r\n" for n, v in req.headers if n in ("via", "from", "call-id", "cseq",
                                                                          "record-route"))
        to = req.get("to") + ("" if ";tag=" in req.get("to") else f";tag=t{self.port}")
        self.send(f"SIP/2.0 {status}\r\n{keep}To: {to}\r\n{extra}Content-Length: 0\r\n\r\n")


def _auth(challenge: str, header: str, user: str, method: str, uri: str) -> str:
    params = parse_auth_params(challenge)[1]
    resp = compute_response("MD5", ha1(user, params["realm"], USERS[user]), nonce=params["nonce"],
                            method=method, uri=uri, qop="auth", nc="00000001", cnonce="c0ffee")
    return (f'{header}: Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}", '
            f'uri="{uri}", response="{resp}", qop=auth, nc=00000001, cnonce="c0ffee", algorithm=MD5\r\n')


def register(phone: Phone, call_id: str, cseq: int, expires: int | None) -> list[str]:
    """bob's REGISTER of the phone's own address (so: not behind NAT), through the digest
    challenge; the contacts the 200 OK lists.  ``expires`` None: a query (no Contact)."""
    binding = ("" if expires is None else
               f"Contact: <sip:bob@127.0.0.1:{phone.port}>\r\nExpires: {expires}\r\n")

    def make(n: int, auth: str) -> str:
        return (f"REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{phone.port};rport;"
                f"branch=z9hG4bK{call_id}.{n}\r\nFrom: <sip:bob@{DOMAIN}>;tag=r{phone.port}\r\n"
                f"To: <sip:bob@{DOMAIN}>\r\nCall-ID: {call_id}\r\nCSeq: {n} REGISTER\r\n"
                f"{binding}{auth}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")

    phone.send(make(cseq, ""))
    challenge = phone.expect(lambda m: m.status >= 200)
    assert challenge.status == 401, challenge.start
    auth = _auth(challenge.get("www-authenticate"), "Authorization", "bob", "REGISTER", f"sip:{DOMAIN}")
    phone.send(make(cseq + 1, auth))
    ok = phone.expect(lambda m: m.status >= 200)
    assert ok.status == 200, ok.start
    return [c.split(">")[0].lstrip("<") for c in ok.all("contact")]


def phone_on_worker(proxy: ProxyProcess, worker: int) -> Phone:
    """A phone whose REGISTERs the kernel gives to ``worker``: found by trying sockets with a
    query REGISTER (it changes nothing) until that worker logs one from the socket's port."""
    for attempt in range(40):
        phone = Phone(proxy.port)
        register(phone, f"probe-{attempt}-{time.time_ns()}", 1, None)
        mark = f" REGISTER bob@{DOMAIN} from udp:127.0.0.1:{phone.port}: 200"
        deadline = time.monotonic() + 5
        while mark not in proxy.output():
            assert time.monotonic() < deadline, proxy.output()
            time.sleep(0.02)
        line = next(ln for ln in proxy.output().splitlines() if mark in ln)
        if f" [{worker}] " in line:
            return phone
        phone.close()
    raise AssertionError(f"no socket of 40 reached worker {worker}")


class Caller(Phone):
    """alice, calling bob with Call-IDs that worker 0 handles."""

    def call(self) -> str:
        """Send the INVITE (through the 407); its Call-ID."""
        cid = _call_id(0, "call")
        self.cid = cid
        uri = f"sip:bob@{DOMAIN}"

        def invite(n: int, auth: str) -> str:
            return (f"INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.port};rport;"
                    f"branch=z9hG4bK{cid}.{n}\r\nFrom: <sip:alice@{DOMAIN}>;tag=a{n}\r\n"
                    f"To: <{uri}>\r\nCall-ID: {cid}\r\nCSeq: {n} INVITE\r\n"
                    f"Contact: <sip:alice@127.0.0.1:{self.port}>\r\n{auth}Max-Forwards: 70\r\n"
                    f"Content-Length: 0\r\n\r\n")

        self.send(invite(1, ""))
        challenge = self.expect(lambda m: m.status >= 200)
        assert challenge.status == 407, challenge.start
        self.ack(challenge, uri, 1)
        self.send(invite(2, _auth(challenge.get("proxy-authenticate"), "Proxy-Authorization", "alice",
                                  "INVITE", uri)))
        return cid

    def ack(self, final: Msg, uri: str, n: int) -> None:
        """ACK of a failure: hop by hop, the INVITE's branch."""
        self.send(f"ACK {uri} SIP/2.0\r\nVia: {final.get('via')}\r\nFrom: {final.get('from')}\r\n"
                  f"To: {final.get('to')}\r\nCall-ID: {final.get('call-id')}\r\nCSeq: {n} ACK\r\n"
                  f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")

    def in_dialog(self, ok: Msg, method: str, n: int) -> None:
        """ACK of a 2xx, or BYE: to the callee's Contact, through the Record-Route set."""
        target = ok.get("contact").split(">")[0].lstrip("<")
        routes = "".join(f"Route: {r}\r\n" for r in reversed(ok.all("record-route")))
        self.send(f"{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.port};rport;"
                  f"branch=z9hG4bK{self.cid}.{method}{n}\r\n{routes}From: {ok.get('from')}\r\n"
                  f"To: {ok.get('to')}\r\nCall-ID: {self.cid}\r\nCSeq: {n} {method}\r\n"
                  f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


def _invites(phones: list[Phone], cid: str, wait: float, enough: int = 0) -> dict[Phone, Msg]:
    """The INVITEs of call ``cid`` the phones get within ``wait`` seconds (or until
    ``enough`` of them got one)."""
    got: dict[Phone, Msg] = {}
    deadline = time.monotonic() + wait
    while len(got) < (enough or len(phones)):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        readable, _, _ = select.select([p.sock for p in phones if p not in got], [], [], left)
        for phone in phones:
            if phone.sock in readable:
                msg = phone.recv(0.1)
                if msg is not None and msg.start.startswith("INVITE ") and msg.get("call-id") == cid:
                    got[phone] = msg
    return got


def busy_call(caller: Caller, phones: list[Phone], expected: int) -> set[Phone]:
    """A call that every reached phone refuses (486); which phones it reached.  Phones not
    reached are given a second more to show that no INVITE comes."""
    cid = caller.call()
    got = _invites(phones, cid, wait=10.0, enough=expected)
    assert len(got) >= expected, f"{len(got)} of {expected} contacts reached"
    got.update(_invites([p for p in phones if p not in got], cid, wait=1.0))
    for phone, invite in got.items():
        phone.reply(invite, "486 Busy Here")
    final = caller.expect(lambda m: m.status >= 200 and m.method == "INVITE")
    assert final.status == 486, final.start
    caller.ack(final, f"sip:bob@{DOMAIN}", 2)
    return set(got)


def test_contacts_added_and_removed_through_one_worker_are_seen_by_the_other(sqlite_url, tmp_path):  # SQLite: the workers' shared counters
    provision(sqlite_url)
    proxy = ProxyProcess(tmp_path, sqlite_url, workers=2, location_cache=60.0,
                         sections={"logging": {"level": "info"}})
    deadline = time.monotonic() + 20
    while proxy.output().count("listening on") < 2:
        assert time.monotonic() < deadline, proxy.output()
        time.sleep(0.05)
    caller = Caller(proxy.port)
    c1, c2, c3 = phone_on_worker(proxy, 1), phone_on_worker(proxy, 1), Phone(proxy.port)
    phones = [c1, c2, c3]
    engine, sessions = open_database(sqlite_url)
    try:
        reg1, reg2 = f"reg1-{time.time_ns()}", f"reg2-{time.time_ns()}"
        assert register(c1, reg1, 1, 600) == [f"sip:bob@127.0.0.1:{c1.port}"]

        # 1. bob has one contact: the call is answered there (worker 0 caches bob's contacts)
        cid = caller.call()
        invite = _invites([c1], cid, wait=10.0, enough=1)[c1]
        c1.reply(invite, "200 OK", f"Contact: <sip:bob@127.0.0.1:{c1.port}>\r\n")
        ok = caller.expect(lambda m: m.status >= 200 and m.method == "INVITE")
        assert ok.status == 200, ok.start
        caller.in_dialog(ok, "ACK", 2)
        c1.expect(lambda m: m.start.startswith("ACK "))
        caller.in_dialog(ok, "BYE", 3)
        c1.reply(c1.expect(lambda m: m.start.startswith("BYE ")), "200 OK")
        assert caller.expect(lambda m: m.method == "BYE").status == 200

        # 2. a second contact, registered through worker 1: the next call forks to both
        assert len(register(c2, reg2, 1, 600)) == 2
        assert busy_call(caller, phones, 2) == {c1, c2}

        # 3. a third contact, written by another proxy: worker 0 answers from its cache
        other = LocationStore(sessions)
        other.update("bob", DOMAIN, save=[Binding(f"sip:bob@127.0.0.1:{c3.port}", time.time() + 600,
                                                  call_id="other-proxy", cseq=1)],
                     call_id="other-proxy", cseq=1)
        other.close()
        assert busy_call(caller, phones, 2) == {c1, c2}

        # 4. the second contact is removed through worker 1: worker 0 forgets its cached
        # contacts and reads them again (the third one appears too)
        assert f"sip:bob@127.0.0.1:{c2.port}" not in register(c2, reg2, 3, 0)
        assert busy_call(caller, phones, 2) == {c1, c3}

        def calls() -> list[str]:
            return [ln for ln in proxy.output().splitlines()
                    if " INFO call alice@example.com -> bob@example.com" in ln]

        deadline = time.monotonic() + 5  # the last call's line may still be on its way
        while len(calls()) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(calls()) == 4 and all(" [0] " in ln for ln in calls()), calls()
    finally:
        for p in (caller, *phones):
            p.close()
        engine.dispose()
        proxy.stop()
