"""Call diversion (sipproxy.routing.diversion): conditions, targets, bounds, RFC 5806 header."""

from __future__ import annotations

import pytest

from ngnpro.models.config import DEFAULTS, ConfigError, validate
from sipproxy.directory.account import Account
from sipproxy.directory.routingdata import FBUS, FNOA, FNOL, FUNC, FUNV, Diversion
from sipproxy.routing.diversion import (
    LOCAL,
    NUMBER,
    REMOTE,
    VOICEMAIL,
    Divert,
    NoDivert,
    classify,
    condition_after_fork,
    condition_before_fork,
    decide,
    diversion_header,
    diverting_parties,
    prior_diversions,
)

LOCAL_DOMAINS = {"example.com", "example.org"}


def is_local(domain: str) -> bool:
    return domain in LOCAL_DOMAINS


def acct(user: str = "alice", groups: tuple[str, ...] = ("free-pstn",), prepaid: bool = False) -> Account:
    return Account(1, user, "Example.COM", "", "", "", groups=frozenset(groups), prepaid=prepaid)


def divs(**targets: str) -> tuple[Diversion, ...]:
    return tuple(Diversion(c, t) for c, t in targets.items())


# -- conditions ---------------------------------------------------------------------------

def test_before_fork():
    assert condition_before_fork(divs(FUNC="sip:bob@example.com"), online=True) == FUNC
    assert condition_before_fork(divs(FUNC="sip:bob@example.com", FNOL="sip:c@x"), online=False) == FUNC
    assert condition_before_fork(divs(FNOL="sip:bob@example.com"), online=False) == FNOL
    assert condition_before_fork(divs(FNOL="sip:bob@example.com"), online=True) is None
    assert condition_before_fork(divs(FBUS="sip:b@x", FUNV="sip:b@x"), online=False) is None
    assert condition_before_fork((), online=False) is None


@pytest.mark.parametrize("codes, expired, condition", [
    ([486], False, FBUS), ([486, 600], False, FBUS), ([600], False, FBUS),
    ([486, 480], False, FUNV), ([480], False, FUNV), ([408, 503], False, FUNV), ([500, 502, 504], False, FUNV),
    ([487, 487], True, FNOA), ([486, 487], True, FNOA), ([], True, FNOA),
    ([603], False, None), ([486, 603], False, None), ([404], False, None), ([487], False, None),
    ([401], False, None), ([], False, None), ([200, 486], False, None), ([501], False, None),
])
def test_after_fork(codes, expired, condition):
    assert condition_after_fork(codes, ring_timeout_expired=expired) == condition


# -- targets ------------------------------------------------------------------------------

@pytest.mark.parametrize("target, kind, uri", [
    ("<voice-mailbox>", VOICEMAIL, None), ("voice-mailbox", VOICEMAIL, None), ("<VOICE-MAILBOX>", VOICEMAIL, None),
    ("sip:bob@example.com", LOCAL, "sip:bob@example.com"),
    ("sip:bob@EXAMPLE.ORG", LOCAL, "sip:bob@EXAMPLE.ORG"),
    ("bob@example.com", LOCAL, "sip:bob@example.com"),
    ("sip:60@example.com", LOCAL, "sip:60@example.com"),  # quick dial / account by number
    ("sip:31208005160@example.com", LOCAL, "sip:31208005160@example.com"),
    ("sip:+31201234567@example.com", NUMBER, "sip:+31201234567@example.com"),
    ("sip:0031201234567@example.com", NUMBER, "sip:0031201234567@example.com"),
    ("sip:0201234567@example.com", NUMBER, "sip:0201234567@example.com"),
    ("tel:+31201234567", NUMBER, "tel:+31201234567"),
    ("sips:carol@remote.example", REMOTE, "sips:carol@remote.example"),
    ("sip:+31201234567@carrier.example", REMOTE, "sip:+31201234567@carrier.example"),
])
def test_classify(target, kind, uri):
    assert classify(target, is_local) == (kind, uri)


@pytest.mark.parametrize("target", ["mailto:a@b", "sip:example.com", "tel:abc", "sip:", "http://x", "sip:a@"])
def test_classify_rejects(target):
    assert classify(target, is_local) is None


# -- decisions ----------------------------------------------------------------------------

def test_unconditional_to_local_user():
    d = decide(acct(), divs(FUNC="sip:bob@example.com"), FUNC, is_local_domain=is_local)
    assert d == Divert(FUNC, "unconditional", "sip:bob@example.com", LOCAL, "sip:bob@example.com",
                       "<sip:alice@example.com>;reason=unconditional;counter=1", 1)


@pytest.mark.parametrize("condition, reason", [
    (FUNC, "unconditional"), (FBUS, "user-busy"), (FNOA, "no-answer"), (FNOL, "unavailable"), (FUNV, "unavailable"),
])
def test_reasons(condition, reason):
    d = decide(acct(), divs(**{condition: "sip:bob@example.com"}), condition, is_local_domain=is_local)
    assert d.reason == reason and d.header.endswith(f";reason={reason};counter=1")


def test_condition_not_set():
    assert decide(acct(), divs(FBUS="sip:bob@example.com"), FNOA, is_local_domain=is_local) == NoDivert(FNOA, "not set")
    assert decide(acct(), (), FUNC, is_local_domain=is_local).why == "not set"
    assert decide(acct(), divs(FUNC="sip:b@example.com"), None, is_local_domain=is_local).why == "not set"
    assert decide(acct(), divs(FUNC="sip:b@example.com"), "XXXX", is_local_domain=is_local).why == "not set"


def test_voicemail():
    d = decide(acct(), divs(FNOA="<voice-mailbox>"), FNOA, is_local_domain=is_local)
    assert (d.kind, d.uri, d.reason) == (VOICEMAIL, None, "no-answer")


def test_remote_and_invalid_targets():
    d = decide(acct(), divs(FBUS="sip:carol@remote.example"), FBUS, is_local_domain=is_local)
    assert (d.kind, d.uri) == (REMOTE, "sip:carol@remote.example")
    assert decide(acct(), divs(FBUS="mailto:x@y"), FBUS, is_local_domain=is_local).why == "invalid target"


def test_bounded_number_of_diversions():
    d = divs(FUNC="sip:bob@example.com")
    assert decide(acct(), d, FUNC, is_local_domain=is_local, prior=4).count == 5
    assert decide(acct(), d, FUNC, is_local_domain=is_local, prior=5).why == "too many diversions"
    assert decide(acct(), d, FUNC, is_local_domain=is_local, prior=1, max_diversions=1).why == "too many diversions"
    assert decide(acct(), d, FUNC, is_local_domain=is_local, max_diversions=0).why == "too many diversions"
    assert DEFAULTS["sipproxy"]["max_diversions"] == 5


def test_max_diversions_setting_is_checked():
    assert validate({"sipproxy": {"max_diversions": 0}})["sipproxy"]["max_diversions"] == 0
    for bad in (-1, 100, "5", True):
        with pytest.raises(ConfigError, match="sipproxy.max_diversions"):
            validate({"sipproxy": {"max_diversions": bad}})


def test_no_diversion_to_itself_or_back():
    assert decide(acct(), divs(FUNC="sip:alice@EXAMPLE.com"), FUNC, is_local_domain=is_local).why == "diverts to itself"
    parties = diverting_parties(["<sip:bob@Example.com>;reason=unconditional;counter=1"])
    assert parties == frozenset({"bob@example.com"})
    d = decide(acct(), divs(FUNC="sip:bob@example.com"), FUNC, is_local_domain=is_local, diverted_by=parties)
    assert d.why == "diversion loop"
    d = decide(acct(), divs(FUNC="sip:carol@example.com"), FUNC, is_local_domain=is_local, diverted_by=parties)
    assert isinstance(d, Divert)


def test_pstn_target_needs_pstn_access():
    d = divs(FUNC="tel:+31201234567", FBUS="sip:0031201234567@example.com")
    assert decide(acct(), d, FUNC, is_local_domain=is_local).kind == NUMBER
    no_pstn = acct(groups=())
    assert decide(no_pstn, d, FUNC, is_local_domain=is_local) == NoDivert(FUNC, "no PSTN access")
    assert decide(no_pstn, d, FBUS, is_local_domain=is_local).why == "no PSTN access"
    assert decide(acct(groups=(), prepaid=True), d, FUNC, is_local_domain=is_local).kind == NUMBER  # balance pays
    assert decide(acct(groups=("free-pstn", "quota")), d, FUNC, is_local_domain=is_local).why == "no PSTN access"
    # a number that is one of ours (ENUM) is no PSTN call
    on_net = {"+31201234567"}.__contains__
    assert decide(no_pstn, d, FUNC, is_local_domain=is_local, on_net=on_net).kind == NUMBER
    assert decide(no_pstn, d, FBUS, is_local_domain=is_local, on_net=on_net).why == "no PSTN access"
    # local and remote targets need no PSTN access
    assert isinstance(decide(no_pstn, divs(FUNC="sip:bob@example.com"), FUNC, is_local_domain=is_local), Divert)
    assert isinstance(decide(no_pstn, divs(FUNC="sip:b@remote.example"), FUNC, is_local_domain=is_local), Divert)


def test_header_address_override():
    d = decide(acct(), divs(FUNC="sip:bob@example.com"), FUNC, is_local_domain=is_local, address="sip:sales@example.com")
    assert d.header == "<sip:sales@example.com>;reason=unconditional;counter=1"


# -- RFC 5806 header ----------------------------------------------------------------------

def test_header_value():
    assert diversion_header("alice@example.com", "user-busy") == "<sip:alice@example.com>;reason=user-busy;counter=1"
    assert diversion_header("sips:a@b", "no-answer", 2) == "<sips:a@b>;reason=no-answer;counter=2"


def test_prior_diversions_sum_counters():
    assert prior_diversions([]) == 0
    assert prior_diversions(["<sip:a@x>;reason=unconditional;counter=1"]) == 1
    assert prior_diversions(["<sip:a@x>;reason=user-busy"]) == 1  # counter absent: 1
    assert prior_diversions(["<sip:a@x>;counter=3", "<sip:b@y>;Counter=2;reason=no-answer"]) == 5
    assert prior_diversions(['"A, B" <sip:a@x;p=1,2>;counter=2, <sip:b@y>;counter=1']) == 3  # comma-joined
    assert prior_diversions(["<sip:a@x>;counter=abc", "<sip:b@y>;counter=0"]) == 2  # nonsense counts 1
    assert prior_diversions(["sip:a@x;reason=user-busy;counter=2"]) == 2  # no angle brackets


def test_diverting_parties_of_several_entries():
    values = ['"Bob" <sip:bob@Example.com>;reason=user-busy, <tel:+3120>;counter=1', "<sip:carol@x.org;user=phone>"]
    assert diverting_parties(values) == frozenset({"bob@example.com", "+3120", "carol@x.org"})
    assert diverting_parties(["garbage<", ""]) == frozenset()
