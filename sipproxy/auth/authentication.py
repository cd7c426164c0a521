"""Digest authentication of requests against the provisioned accounts (RFC 3261 22).

The registrar's 401 and the proxy's 407 are one check: :meth:`Authenticator.check` finds
the account the credentials name (``user`` or ``user@domain``, RFC 8760 algorithms), lets
:class:`sipproxy.sip.digest.DigestAuth` verify them, and answers the authenticated account
or the response to send -- a challenge, sent statelessly (RFC 3261 8.2.7), or a 400 for
credentials that cannot be read.  Which algorithms a challenge offers is learnt per client
by :class:`sipproxy.auth.ordering.ChallengeOrder` (so phones that cannot do SHA-256 and give
up when it is offered still register: they get MD5 alone).  Sans-I/O: the accounts come
from the directory object handed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from sipproxy.auth.ordering import FALLBACK, ChallengeOrder
from sipproxy.directory.account import Account
from sipproxy.sip import digest
from sipproxy.sip.digest import AuthResult, DigestAuth
from sipproxy.sip.ids import new_tag
from sipproxy.sip.parser import Request, Response, make_response
from sipproxy.sip.transaction import stateless_tag

__all__ = ["Verdict", "Authenticator"]


class Verdict(NamedTuple):
    """What :meth:`Authenticator.check` decided: an account, or the response to send.
    (A named tuple: one per authenticated request, cheaper to build than a frozen dataclass.)"""

    account: Account | None
    response: Response | None
    result: AuthResult


class Authenticator:
    """Digest authentication of a request against the Directory: ``check`` returns the
    authenticated account or the 401/407/400 to answer with.  ``proxy=True`` uses
    Proxy-Authorization / 407 / Proxy-Authenticate (RFC 3261 22.3)."""

    def __init__(self, directory: Any, auth: DigestAuth, realm: str = "", *,
                 order: ChallengeOrder | None = None, md5_only_domains: Iterable[str] = ()) -> None:
        self.directory = directory
        self.auth = auth
        self.realm = realm
        #: the order of the challenges per client (default: learnt, see ChallengeOrder)
        self.order = order if order is not None else ChallengeOrder(auth.algorithms)
        #: domains whose users are challenged with MD5 alone, as Kamailio does
        self.md5_only_domains = frozenset(d.lower() for d in md5_only_domains)

    def realm_for(self, domain: str) -> str:
        return self.realm or domain.lower()

    def check(self, request: Request, domain: str, *, proxy: bool = False, source: str = "") -> Verdict:
        """Authenticate ``request`` as a user of ``domain`` (the From domain for calls, the
        To domain for REGISTER).  ``source`` (``transport:ip:port`` it came from) tells
        clients apart for the order of the challenges."""
        domain = domain.lower()
        realm = self.realm_for(domain)
        accounts: dict[str, Account | None] = {}

        def lookup(username: str, algorithm: str) -> str | None:
            user, at, dom = username.partition("@")
            if at and dom.lower() != domain:
                return None
            account = self.directory.account(user if at else username, domain)
            accounts[username] = account
            return account.digest_ha1(username, algorithm) if account else None

        header = "proxy-authorization" if proxy else "authorization"
        result = self.auth.verify(request.headers.raw(header), method=request.method, realm=realm,
                                  lookup=lookup)
        order = self.order
        keys = (order.keys(source, self._aor(request, domain))
                if order.adaptive and domain not in self.md5_only_domains else ())
        attempt = f"{request.call_id}|{request.cseq[0]}" if keys else ""
        order.observe(keys, result, attempt)
        if result.ok:
            return Verdict(accounts.get(result.username), None, result)
        if result.status == digest.MALFORMED:
            return Verdict(None, make_response(request, 400, "Malformed Credentials", to_tag=new_tag()), result)
        return Verdict(None, self.challenge(request, domain, proxy=proxy, stale=result.status == digest.STALE,
                                            keys=keys, attempt=attempt), result)

    @staticmethod
    def _aor(request: Request, domain: str) -> str:
        """The address-of-record the request claims: the To user for REGISTER, else From."""
        uri = request.to.uri if request.method == "REGISTER" else request.from_.uri
        return f"{uri.user}@{domain}" if uri.user else ""

    def challenge(self, request: Request, domain: str, *, proxy: bool = False, stale: bool = False,
                  keys: tuple[str, ...] = (), attempt: str = "") -> Response:
        """A 401 (or 407) carrying a fresh challenge for ``domain``'s realm in the
        algorithms the client known by ``keys`` can answer (see ChallengeOrder)."""
        algorithms = (FALLBACK,) if domain.lower() in self.md5_only_domains else self.order.order(keys)
        headers = self.auth.challenge(self.realm_for(domain), proxy=proxy, stale=stale, algorithms=algorithms)
        self.order.challenged(keys, algorithms, attempt)
        status = 407 if proxy else 401
        # sent statelessly (RFC 3261 8.2.7), so the tag is the request's own: see stateless_tag
        return make_response(request, status, to_tag=stateless_tag(request), headers=headers)
