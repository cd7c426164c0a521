"""Which digest challenges are offered, per client (sipproxy.auth.ordering).

Unknown clients get the configured order (SHA-256, then MD5); a client that cannot answer a
challenge offering SHA-256 (it comes back without credentials, answers it wrongly or
unreadably) gets the MD5 challenge alone, as from Kamailio -- baresip 1.0 gives up when any
challenge names an algorithm it does not know; so does a client whose credentials were in
MD5.  A client that authenticated with SHA-256 keeps getting SHA-256 first.  Then the same
through the registrar: a client like baresip 1.0 registers on its second attempt, a SHA-256
client keeps SHA-256.
"""

from __future__ import annotations

import pytest

from sipproxy.auth.ordering import PATIENCE, ChallengeOrder
from sipproxy.directory.store import Directory
from sipproxy.registrar.location import LocationStore
from sipproxy.registrar.registrar import Registrar
from sipproxy.sip import digest
from sipproxy.sip.digest import AuthResult, DigestAuth, parse_auth_params
from sipproxy.sip.parser import Response

from .support import DOMAIN, Clock, add_accounts, answer, parse, provision, register

BOTH = ("SHA-256", "MD5")
MD5 = ("MD5",)
SRC = "udp:198.51.100.7:40000"
MISSING = AuthResult(digest.MISSING, reason="no credentials")


def ok(alg: str) -> AuthResult:
    return AuthResult(digest.OK, "alice", alg)


def wrong(alg: str, reason: str = digest.BAD_RESPONSE) -> AuthResult:
    return AuthResult(digest.WRONG, "alice", alg, reason)


class Later(Clock):
    """A clock that moves on by ``PATIENCE`` each time it is read: every request comes long
    enough after the previous one for an unanswered challenge to count as failed."""

    def __call__(self) -> float:
        self.t += PATIENCE
        return self.t


def Order(algorithms: tuple[str, ...] = BOTH, **kw) -> ChallengeOrder:  # noqa: N802
    return ChallengeOrder(algorithms, clock=kw.pop("clock", Later()), **kw)


def challenge(order: ChallengeOrder, keys: tuple[str, ...], attempt: str,
              result: AuthResult = MISSING) -> tuple[str, ...]:
    """What the Authenticator does for a request that is not let in: learn, then challenge;
    returns the algorithms offered."""
    order.observe(keys, result, attempt)
    algs = order.order(keys)
    order.challenged(keys, algs, attempt)
    return algs


def test_keys_device_then_account() -> None:
    assert ChallengeOrder.keys(SRC, "Alice@example.com") == (f"{SRC}|alice@example.com", "alice@example.com")
    assert ChallengeOrder.keys("", "alice@example.com") == ("alice@example.com",)
    assert ChallengeOrder.keys(SRC, "") == (SRC,)
    assert ChallengeOrder.keys("", "") == ()


def test_unknown_client_gets_the_configured_order() -> None:
    assert Order().order(ChallengeOrder.keys(SRC, "alice@x")) == BOTH
    assert Order(("MD5", "SHA-256")).order(()) == ("MD5", "SHA-256")


def test_client_that_never_answers_gets_md5_alone_next_time() -> None:
    order = Order()
    keys = ChallengeOrder.keys(SRC, "alice@x")
    assert challenge(order, keys, "cid|1") == BOTH
    # the same request again (a retransmission, the 401 was lost): not a failure
    assert challenge(order, keys, "cid|1") == BOTH
    # the next attempt (baresip: same Call-ID, next CSeq) comes without credentials
    assert challenge(order, keys, "cid|2") == MD5
    # it answers MD5 and succeeds: MD5 alone from now on
    order.observe(keys, ok("MD5"), "cid|3")
    assert order.known(keys) == "MD5"
    assert challenge(order, keys, "cid|4") == MD5
    assert challenge(order, keys, "cid|5") == MD5  # nothing pending after an MD5-only challenge


def test_requests_sent_together_are_not_a_failure() -> None:
    """A phone sends REGISTER and SUBSCRIBE (or two lines' REGISTERs) at once, both without
    credentials: the second arrives before the phone could answer the first challenge."""
    clock = Clock()
    order = Order(clock=clock)
    keys = ChallengeOrder.keys(SRC, "alice@x")
    assert challenge(order, keys, "reg|1") == BOTH
    clock.t += 0.01
    assert challenge(order, keys, "sub|1") == BOTH
    clock.t += 0.01
    order.observe(keys, ok("SHA-256"), "reg|2")
    order.observe(keys, ok("SHA-256"), "sub|2")
    assert order.order(keys) == BOTH
    # a client that never answers: its next attempt, later, counts
    other = ChallengeOrder.keys(SRC, "bob@x")
    assert challenge(order, other, "b|1") == BOTH
    clock.t += PATIENCE - 0.1
    assert challenge(order, other, "b|2") == BOTH  # too soon to tell (pending is now b|2)
    clock.t += PATIENCE
    assert challenge(order, other, "b|3") == MD5


def test_configured_md5_first_still_falls_back_to_md5_alone() -> None:
    """baresip fails on a SHA-256 challenge below MD5 too."""
    order = Order(("MD5", "SHA-256"))
    keys = ChallengeOrder.keys(SRC, "alice@x")
    assert challenge(order, keys, "cid|1") == ("MD5", "SHA-256")
    assert challenge(order, keys, "cid|2") == MD5


def test_sha256_client_keeps_sha256() -> None:
    order = Order()
    keys = ChallengeOrder.keys(SRC, "alice@x")
    assert challenge(order, keys, "cid|1") == BOTH
    order.observe(keys, ok("SHA-256"), "cid|2")
    # a fresh REGISTER without credentials later (many phones re-register that way)
    for cseq in range(3, 6):
        assert challenge(order, keys, f"cid|{cseq}") == BOTH
        order.observe(keys, ok("SHA-256"), f"cid|{cseq}+")
    assert order.known(keys) == "SHA-256"


def test_md5_first_configuration_learns_a_sha256_client() -> None:
    order = Order(("MD5", "SHA-256"))
    keys = ChallengeOrder.keys(SRC, "alice@x")
    challenge(order, keys, "cid|1")
    order.observe(keys, ok("SHA-256-sess"), "cid|2")  # it picked the stronger one
    assert order.order(keys) == BOTH


def test_wrong_response_falls_back() -> None:
    order = Order()
    keys = ChallengeOrder.keys(SRC, "alice@x")
    challenge(order, keys, "cid|1")
    assert challenge(order, keys, "cid|2", wrong("SHA-256")) == MD5
    assert challenge(order, keys, "cid|3", wrong("MD5")) == MD5
    other = ChallengeOrder.keys(SRC, "bob@x")
    assert challenge(order, other, "b|1", wrong("SHA-256-sess")) == MD5


def test_a_forged_nonce_or_unknown_user_is_not_a_failed_computation() -> None:
    order = Order()
    keys = ChallengeOrder.keys(SRC, "alice@x")
    challenge(order, keys, "cid|1")
    # credentials in SHA-256 whose nonce is not ours (e.g. issued before a restart): the
    # client does SHA-256, so it stays first
    assert challenge(order, keys, "cid|2", wrong("SHA-256", "nonce not ours")) == BOTH
    assert challenge(order, keys, "cid|3", AuthResult(digest.STALE, "alice", "SHA-256", "nonce expired")) == BOTH
    assert challenge(order, keys, "cid|4", wrong("SHA-256", "unknown user")) == BOTH


def test_after_a_restart_a_phone_answering_in_md5_gets_md5_alone() -> None:
    order = Order()  # empty memory, as after a restart
    keys = ChallengeOrder.keys(SRC, "alice@x")
    assert challenge(order, keys, "cid|7", wrong("MD5", "nonce not ours")) == MD5
    order.observe(keys, ok("MD5"), "cid|8")
    assert order.known(keys) == "MD5"


def test_malformed_answer_to_a_sha256_challenge_falls_back() -> None:
    order = Order()
    keys = ChallengeOrder.keys(SRC, "alice@x")
    malformed = AuthResult(digest.MALFORMED, "alice", reason="malformed credentials")
    order.observe(keys, malformed, "cid|1")  # nothing pending: nothing learnt
    assert order.order(keys) == BOTH
    challenge(order, keys, "cid|1")
    order.observe(keys, malformed, "cid|2")
    assert order.order(keys) == MD5


def test_device_key_wins_over_account_key() -> None:
    order = Order()
    desk = ChallengeOrder.keys("udp:192.0.2.1:5060", "alice@x")
    soft = ChallengeOrder.keys("udp:192.0.2.2:5060", "alice@x")
    # the desk phone does SHA-256: the account learns SHA-256
    challenge(order, desk, "d|1")
    order.observe(desk, ok("SHA-256"), "d|2")
    # the softphone of the same account cannot: it fails once, then gets MD5 alone
    assert challenge(order, soft, "s|1") == BOTH
    assert challenge(order, soft, "s|2") == MD5
    order.observe(soft, ok("MD5"), "s|3")
    # each device keeps its own; the account key holds the last success
    assert order.order(desk) == BOTH and order.order(soft) == MD5
    assert order.known(("alice@x",)) == "MD5"


def test_account_key_covers_a_client_on_a_new_port() -> None:
    """sipp picks a new port per run: the account remembers that the challenge was unanswered."""
    order = Order()
    assert challenge(order, ChallengeOrder.keys("udp:127.0.0.1:40001", "bob@x"), "run1|1") == BOTH
    assert challenge(order, ChallengeOrder.keys("udp:127.0.0.1:40002", "bob@x"), "run2|1") == MD5


def test_not_adaptive_or_single_algorithm_is_fixed() -> None:
    for order in (Order(BOTH, adaptive=False), Order(("SHA-256",)), Order(MD5),
                  Order(("SHA-256", "SHA-256"))):
        keys = ChallengeOrder.keys(SRC, "alice@x")
        configured = order.algorithms
        order.observe(keys, MISSING, "a|1")
        order.challenged(keys, order.order(keys), "a|1")
        order.observe(keys, MISSING, "a|2")
        order.observe(keys, wrong("SHA-256"), "a|3")
        order.observe(keys, ok("MD5"), "a|4")
        assert order.order(keys) == configured and len(order) == 0


def test_memory_is_bounded_lru() -> None:
    order = Order(BOTH, capacity=4)
    for n in range(10):
        order.observe((f"k{n}",), ok("MD5"), "x")
    assert len(order) == 4
    assert order.order(("k0",)) == BOTH  # forgotten: the configured order again
    assert order.order(("k9",)) == MD5


# -- through the registrar ------------------------------------------------------------------


@pytest.fixture
def env(db_url: str):
    engine, factory = provision(db_url, {"alice": "pw-alice", "bob": "pw-bob"})
    clock = Clock()
    auth = DigestAuth(b"test-secret", clock=clock)
    registrar = Registrar(Directory(factory), LocationStore(factory, clock=clock), auth, clock=clock,
                          digest_order=ChallengeOrder(auth.algorithms, clock=clock))
    yield registrar, clock
    engine.dispose()


def algorithms(response: Response) -> list[str]:
    out = []
    for value in response.headers.raw("www-authenticate"):
        parsed = parse_auth_params(value)
        assert parsed is not None
        out.append(parsed[1]["algorithm"])
    return out


def test_registrar_md5_only_client_registers_on_its_retry(env) -> None:  # noqa: ANN001
    """What baresip 1.0 does: REGISTER, 401 (a SHA-256 challenge in it: it gives up), the
    same REGISTER with the next CSeq 30-60 s later, 401 (MD5 alone), the answer, 200."""
    reg, clock = env
    first = reg.handle(parse(register("alice", call_id="bs-1", cseq=1)), received=SRC)
    assert first.status == 401 and algorithms(first) == ["SHA-256", "MD5"]
    clock.t += 0.5
    again = reg.handle(parse(register("alice", call_id="bs-1", cseq=1)), received=SRC)  # retransmission
    assert algorithms(again) == ["SHA-256", "MD5"]
    clock.t += 40
    retry = reg.handle(parse(register("alice", call_id="bs-1", cseq=2)), received=SRC)
    assert retry.status == 401 and algorithms(retry) == ["MD5"]
    creds = answer(retry, "alice", "pw-alice", algorithm="MD5")
    assert reg.handle(parse(register("alice", call_id="bs-1", cseq=3, auth=creds)), received=SRC).status == 200
    # its re-registrations and its calls are challenged with MD5 alone from now on
    assert algorithms(reg.handle(parse(register("alice", call_id="bs-1", cseq=4)), received=SRC)) == ["MD5"]
    invite = (
        "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:40000;branch=z9hG4bKinv1\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n"
        "Call-ID: inv-1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@198.51.100.7:40000>\r\nContent-Length: 0\r\n\r\n"
    )
    verdict = reg.authenticator.check(parse(invite.encode()), DOMAIN, proxy=True, source=SRC)
    assert verdict.response.status == 407
    [only] = verdict.response.headers.raw("proxy-authenticate")
    assert "algorithm=MD5" in only


def test_registrar_sha256_client_stays_on_sha256(env) -> None:  # noqa: ANN001
    reg, clock = env
    src = "udp:198.51.100.8:5060"
    first = reg.handle(parse(register("bob", call_id="sha-1", cseq=1)), received=src)
    assert algorithms(first) == ["SHA-256", "MD5"]
    creds = answer(first, "bob", "pw-bob", algorithm="SHA-256")
    assert reg.handle(parse(register("bob", call_id="sha-1", cseq=2, auth=creds)), received=src).status == 200
    clock.t += 1800
    again = reg.handle(parse(register("bob", call_id="sha-1", cseq=3)), received=src)
    assert algorithms(again) == ["SHA-256", "MD5"]
    creds = answer(again, "bob", "pw-bob", algorithm="SHA-256")
    assert reg.handle(parse(register("bob", call_id="sha-1", cseq=4, auth=creds)), received=src).status == 200


def test_config_md5_only_domain_and_fixed_order(db_url: str, tmp_path) -> None:  # noqa: ANN001
    from ngnpro.models.config import load_config
    from tests.helpers import write_config

    engine, factory = provision(db_url, {"alice": "pw-alice"})
    add_accounts(factory, {"dave": "pw-dave"}, domain="legacy.example.net")
    try:
        def registrar(sipproxy: dict) -> Registrar:
            config = load_config(str(write_config(tmp_path / "c.toml", {"sipproxy": sipproxy})))
            clock = Clock()
            return Registrar.from_config(config["sipproxy"], Directory(factory), LocationStore(factory, clock=clock),
                                         DigestAuth(b"k", clock=clock))

        # a domain of phones that cannot do SHA-256: MD5 alone, at the first attempt
        reg = registrar({"digest_md5_only_domains": ["Legacy.Example.Net"]})
        first = reg.handle(parse(register("dave", domain="legacy.example.net")), received=SRC)
        assert first.status == 401 and algorithms(first) == ["MD5"]
        assert algorithms(reg.handle(parse(register("alice")), received=SRC)) == ["SHA-256", "MD5"]
        # digest_adaptive = false: the configured order whatever happened before
        reg = registrar({"digest_adaptive": False})
        for cseq in (1, 2, 3):
            response = reg.handle(parse(register("alice", call_id="fixed", cseq=cseq)), received=SRC)
            assert algorithms(response) == ["SHA-256", "MD5"]
    finally:
        engine.dispose()
