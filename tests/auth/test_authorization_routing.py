"""Authorization inside routing: where each rule applies, the Warning header, emergency
calls and trusted peers passing, the call limit's two counts."""

from __future__ import annotations

import datetime as _dt
from decimal import Decimal

from sipproxy.directory.account import GROUP_BLOCKED, GROUP_PSTN, Account
from sipproxy.routing.decision import RouteRequest, Targets
from sipproxy.routing.pipeline import Router
from sipproxy.sip.addressing import Inbound, Listener, Peer
from sipproxy.sip.parser import Response, parse_message
from tests.routing.test_pipeline import DOMAIN, Data, Edge, Location, Resolver
from tests.routing.test_pipeline import Directory as BaseDirectory


def _acct(username: str, **kw) -> Account:  # noqa: ANN003
    kw["groups"] = frozenset(kw.get("groups", ()))
    return Account(id=1, username=username, domain=DOMAIN, ha1="", ha1b="", ha1_sha256="", **kw)


class Directory(BaseDirectory):
    def __init__(self, callees: dict | None = None, cost: Decimal = Decimal(0), dialogs: int = 0,
                 domain_acls: dict | None = None) -> None:
        self.callees = callees or {}
        self.cost, self.dialogs = cost, dialogs
        self.domain_acls = domain_acls or {}
        self.asked: list[str] = []

    def domain_acl(self, domain: str) -> tuple:
        self.asked.append(f"acl {domain}")
        return self.domain_acls.get(domain, ())

    def account(self, user, domain):  # noqa: ANN001, ANN201
        if user in self.callees:
            return self.callees[user]
        return super().account(user, domain)

    def month_cost(self, who: str) -> Decimal:
        self.asked.append(f"cost {who}")
        return self.cost

    def active_calls(self, who: str) -> int:
        self.asked.append(f"calls {who}")
        return self.dialogs


def _router(directory: Directory | None = None) -> Router:
    return Router(directory or Directory(), Location(), Edge(), data=Data(), resolver=Resolver(),
                  emergency_numbers=("112",), server_domain="proxy.example.com")


def _call(router: Router, uri: str, *, account: Account | None = None, source: str = "198.51.100.7",
          method: str = "INVITE", from_: str = "sip:x@elsewhere.example") -> RouteRequest:
    req = parse_message((f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {source};branch=z9hG4bKp1\r\n"
                         f"From: <{from_}>;tag=f\r\nTo: <sip:y@example.com>\r\n"
                         f"Call-ID: authz@x\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n"
                         "Content-Length: 0\r\n\r\n").encode())
    call = RouteRequest(req, Inbound(b"", Peer("udp", source, 5060), Listener("udp", "127.0.0.1", 5060)),
                        account, True)
    call.trusted, call.gateway = router.trusted_source(source)
    return call


def _refused(out: Response | Targets) -> tuple[int, str, str]:
    assert isinstance(out, Response), out
    return out.status, out.reason, out.headers.get("warning") or ""


PSTN_NUMBER = "sip:0209999999@example.com"


def test_no_pstn_access_carries_a_warning():
    r = _router()
    status, reason, warning = _refused(r.route(_call(r, PSTN_NUMBER, account=_acct("bob"))))
    assert (status, reason) == (403, "No PSTN Access")
    assert warning == '399 proxy.example.com "The account has no access to the PSTN"'


def test_blocked_account_is_refused_for_any_destination_but_emergency():
    r = _router()
    blocked = _acct("bob", groups={GROUP_BLOCKED, GROUP_PSTN}, region="north")
    assert _refused(r.route(_call(r, "sip:alice@example.com", account=blocked)))[:2] == (403, "Account Blocked")
    assert _refused(r.route(_call(r, "sip:x@elsewhere.example", account=blocked)))[:2] == (403, "Account Blocked")
    by_customer = _acct("bob", groups={GROUP_BLOCKED}, blocked_by="customer")
    assert _refused(r.route(_call(r, "sip:alice@example.com", account=by_customer)))[:2] == (
        403, "Account Blocked By Customer")
    assert isinstance(r.route(_call(r, "sip:112@example.com", account=blocked)), Targets)


def test_quota_and_prepaid_apply_to_the_pstn_only():
    d = Directory(cost=Decimal("25.50"))
    r = _router(d)
    over = _acct("bob", groups={GROUP_PSTN}, quota=25)
    assert _refused(r.route(_call(r, PSTN_NUMBER, account=over)))[:2] == (403, "Quota Exceeded")
    assert d.asked == ["cost bob@example.com"]
    assert isinstance(r.route(_call(r, "sip:alice@example.com", account=over)), Targets)
    broke = _acct("bob", prepaid=True, balance=Decimal(0))
    assert _refused(r.route(_call(r, PSTN_NUMBER, account=broke)))[:2] == (402, "Insufficient Credit")
    assert isinstance(r.route(_call(r, PSTN_NUMBER, account=_acct("bob", prepaid=True, balance=Decimal(3)))),
                      Targets)


def test_call_limit_counts_answered_calls_and_calls_in_progress():
    d = Directory(dialogs=1)
    r = _router(d)
    limited = _acct("bob", call_limit=2)
    assert isinstance(r.route(_call(r, "sip:alice@example.com", account=limited)), Targets)
    r.in_progress = lambda caller: 1 if caller == "bob@example.com" else 0
    assert _refused(r.route(_call(r, "sip:alice@example.com", account=limited)))[:2] == (403, "Call Limit Reached")
    # a MESSAGE is not a call
    assert isinstance(r.route(_call(r, "sip:alice@example.com", account=limited, method="MESSAGE")), Targets)


def test_barring_prefix_on_the_e164_number():
    r = _router()
    barred = _acct("bob", groups={GROUP_PSTN}, barring_prefixes=("+3120999",))
    assert _refused(r.route(_call(r, PSTN_NUMBER, account=barred)))[:2] == (403, "Destination Barred")
    assert _refused(r.route(_call(r, "tel:+31209999999", account=barred)))[:2] == (403, "Destination Barred")
    assert isinstance(r.route(_call(r, "sip:0201111111@example.com", account=barred)), Targets)


def test_trusted_peers_are_not_checked_as_accounts():
    r = _router(Directory(dialogs=99))
    assert isinstance(r.route(_call(r, PSTN_NUMBER, source="192.0.2.200")), Targets)


def test_incoming_rules_at_the_callee():
    callees = {
        "acl": _acct("acl", acl=(("192.0.2.0", 24),)),
        "closed": _acct("closed", groups={GROUP_BLOCKED}),
        "picky": _acct("picky", reject_members=("sip:spam@elsewhere.example",)),
        "office": _acct("office", timezone="Europe/Amsterdam", accept_rules=()),
    }
    r = _router(Directory(callees))
    assert _refused(r.route(_call(r, "sip:acl@example.com")))[:2] == (403, "Source Address Not Allowed")
    assert isinstance(r.route(_call(r, "sip:acl@example.com", source="192.0.2.7")), Targets)
    assert _refused(r.route(_call(r, "sip:closed@example.com")))[:2] == (403, "Account Blocked")
    out = r.route(_call(r, "sip:picky@example.com", from_="sip:spam@elsewhere.example"))
    assert _refused(out) == (603, "Decline", '399 proxy.example.com "The callee rejects calls from this caller"')
    assert isinstance(r.route(_call(r, "sip:picky@example.com")), Targets)
    # the time the rules are checked at is the router's
    from sipproxy.directory.account import AcceptWindow
    callees["office"] = _acct("office", timezone="Europe/Amsterdam", accept_rules=(AcceptWindow(
        persistent=True, groups=frozenset({"everybody"}), start="09:00", stop="17:00", days=31),))
    r.now = lambda: _dt.datetime(2026, 12, 7, 20, 0, tzinfo=_dt.UTC)
    assert _refused(r.route(_call(r, "sip:office@example.com")))[0] == 480
    r.now = lambda: _dt.datetime(2026, 12, 7, 10, 0, tzinfo=_dt.UTC)
    assert isinstance(r.route(_call(r, "sip:office@example.com")), Targets)


def test_the_callees_domain_acl_applies_to_incoming_calls():
    """The ACL of the domain the callee's account lives in (after aliases), with the
    account's own; a trusted peer's call does not even read it."""
    d = Directory({"fenced": _acct("fenced", acl=(("192.0.2.0", 28),))},
                  domain_acls={DOMAIN: (("192.0.2.0", 24), ("198.18.0.0", 15))})
    r = _router(d)
    out = r.route(_call(r, "sip:bob@example.com"))  # from 198.51.100.7: outside the domain's ACL
    assert _refused(out) == (403, "Source Address Not Allowed",
                             '399 proxy.example.com "The source address may not call this account"')
    assert d.asked == [f"acl {DOMAIN}"]
    assert isinstance(r.route(_call(r, "sip:bob@example.com", source="198.19.0.9")), Targets)
    assert isinstance(r.route(_call(r, "sip:sales@example.com", source="198.19.0.9")), Targets)  # alias
    assert _refused(r.route(_call(r, "sip:sales@example.com")))[0] == 403
    # the account's ACL as well: inside the domain's but outside the account's is refused
    assert _refused(r.route(_call(r, "sip:fenced@example.com", source="198.19.0.9")))[0] == 403
    assert isinstance(r.route(_call(r, "sip:fenced@example.com", source="192.0.2.9")), Targets)
    d.asked.clear()
    assert isinstance(r.route(_call(r, "sip:bob@example.com", source="192.0.2.200")), Targets)  # trusted
    assert d.asked == []


def test_refusals_are_logged_with_account_source_and_destination(caplog):
    r = _router()
    with caplog.at_level("WARNING", logger="sipproxy.routing"):
        r.route(_call(r, PSTN_NUMBER, account=_acct("bob")))
    line = caplog.records[-1].getMessage()
    assert "bob@example.com" in line and "198.51.100.7" in line and "0209999999" in line and "403" in line


class Rating:
    """The app's PrepaidCalls.rate, as routing asks it: (payer, number) -> Rated or None."""

    def __init__(self, rated: dict) -> None:
        self.rated, self.asked = rated, []

    def __call__(self, payer: str, number: str):  # noqa: ANN204
        self.asked.append((payer, number))
        return self.rated.get(payer)


def test_pstn_calls_are_rated_on_whoever_pays():
    from sipproxy.dialog.prepaid import Rated

    r = _router(Directory(callees={"offline": _acct("offline", prepaid=True, balance=Decimal(5))}))
    r.rating = Rating({"bob@example.com": Rated(True, Decimal(1), "T-bob", Decimal("0.01")),
                       "carol@example.com": Rated(False, Decimal(0), "T-carol", Decimal("0.01")),
                       "dave@example.com": Rated(True, Decimal(1), None, Decimal(0)),
                       "erin@example.com": Rated(True, Decimal("0.005"), "T-erin", Decimal("0.01")),
                       "offline@example.com": Rated(True, Decimal(5), "T-off", Decimal("0.01"))})
    out = r.route(_call(r, PSTN_NUMBER, account=_acct("bob", prepaid=True)))
    assert isinstance(out, Targets) and (out.tariff, out.prepaid) == ("T-bob", True)
    # postpaid: rated for its price, neither cut off nor debited
    out = r.route(_call(r, PSTN_NUMBER, account=_acct("carol", groups={GROUP_PSTN})))
    assert isinstance(out, Targets) and (out.tariff, out.prepaid) == ("T-carol", False)
    # prepaid without a rate there, or with less than the first increment
    assert _refused(r.route(_call(r, PSTN_NUMBER, account=_acct("dave", prepaid=True))))[:2] == (
        403, "Destination Not Rated")
    assert _refused(r.route(_call(r, PSTN_NUMBER, account=_acct("erin", prepaid=True))))[:2] == (
        402, "Insufficient Credit")
    # an outside caller to a subscriber diverting to a number (not online): the diverting
    # prepaid account pays, so its rating goes with the call
    call = _call(r, "sip:offline@example.com")
    out = r.route(call)
    assert isinstance(out, Targets) and (out.tariff, out.prepaid) == ("T-off", True)
    assert call.billing_party == "offline@example.com"
    # an emergency call is never rated (nor refused for credit)
    asked = len(r.rating.asked)
    assert isinstance(r.route(_call(r, "sip:112@example.com", account=_acct("dave", prepaid=True, region="south"))),
                      Targets)
    assert len(r.rating.asked) == asked
