"""The registrar (RFC 3261 section 10.3): REGISTER in, the response out.

Sans-I/O decision logic: :meth:`Registrar.handle` takes a parsed REGISTER and where it came
from, and returns the :class:`~sipproxy.sip.parser.Response` to send; the transport and the
server transaction around it belong to the proxy.  Data comes from the
:class:`~sipproxy.directory.store.Directory` (domains, credentials, groups) and goes to the
:class:`~sipproxy.registrar.location.LocationStore` (bindings in SQL).

Policy, in order: REGISTER is answered here and never relayed -- an address-of-record
outside our local domains gets 403.  Digest authentication (401 challenge offering SHA-256
and MD5 -- MD5 alone to a client that cannot do SHA-256, see :mod:`sipproxy.auth.ordering`
-- ``stale=true`` on an expired nonce, a new challenge on wrong credentials).  The
authenticated user must be the To user (403 otherwise; the routing guide's rule), and a
``blocked`` account gets 403.  Then contacts: ``*`` with ``Expires: 0`` removes all,
``expires`` parameter over the Expires header over the default, 423 with Min-Expires below
the minimum, capped at the maximum, q-values, Path (RFC 3327, echoed when the UA supports
it), the source address stored for NAT traversal.  The 200 lists every current binding with
its remaining time, plus a Date header.

The digest check itself is :class:`sipproxy.auth.authentication.Authenticator`, shared with
the proxy's 407 challenges.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Iterable

from sipproxy.auth.authentication import Authenticator
from sipproxy.auth.ordering import ChallengeOrder
from sipproxy.directory.store import Directory
from sipproxy.proxy.unavailable import Unavailable, is_database_error
from sipproxy.registrar.location import Binding, LocationStore, OutOfOrder, TooManyContacts
from sipproxy.sip import digest
from sipproxy.sip.digest import DigestAuth
from sipproxy.sip.ids import new_tag
from sipproxy.sip.parser import Request, Response, make_response
from sipproxy.sip.uri import NameAddr, ParseError

log = logging.getLogger("sipproxy.registrar")


_date_cache: tuple[int, str] = (-1, "")


def _http_date(now: float) -> str:
    """RFC 1123 date of ``now`` for the Date header, formatted once per second."""
    global _date_cache
    second = int(now)
    if _date_cache[0] != second:
        _date_cache = (second, email.utils.formatdate(second, usegmt=True))
    return _date_cache[1]


def split_address(addr: str) -> tuple[str, str, int]:
    """``transport:host:port`` (host may be ``[v6]``) -> (transport, host, port)."""
    transport, _, rest = addr.partition(":")
    host, _, port = rest.rpartition(":")
    return transport.lower(), host.strip("[]"), int(port) if port.isdigit() else 0


class Registrar:
    """RFC 3261 10.3 REGISTER processing for the local domains."""

    def __init__(
        self,
        directory: Directory,
        location: LocationStore,
        auth: DigestAuth,
        *,
        realm: str = "",
        min_expires: int = 60,
        max_expires: int = 3600,
        default_expires: int = 3600,
        max_contacts: int = 16,
        clock: Callable[[], float] = time.time,
        digest_order: ChallengeOrder | None = None,
        md5_only_domains: Iterable[str] = (),
    ) -> None:
        self.directory = directory
        self.location = location
        self.authenticator = Authenticator(directory, auth, realm, order=digest_order,
                                           md5_only_domains=md5_only_domains)
        self.min_expires = min_expires
        self.max_expires = max(max_expires, min_expires)
        self.default_expires = min(max(default_expires, min_expires), self.max_expires)
        self.max_contacts = max_contacts
        self._clock = clock
        #: the database outage state, shared with the proxy's initial requests
        self.unavailable = Unavailable()

    @classmethod
    def from_config(cls, section: dict, directory: Directory, location: LocationStore,
                    auth: DigestAuth) -> Registrar:
        """Build from the validated ``[sipproxy]`` config section."""
        return cls(directory, location, auth, realm=section.get("realm", ""),
                   min_expires=section["min_expires"], max_expires=section["max_expires"],
                   default_expires=section["default_expires"],
                   digest_order=ChallengeOrder(auth.algorithms, adaptive=section.get("digest_adaptive", True)),
                   md5_only_domains=section.get("digest_md5_only_domains", ()))

    def handle(self, request: Request, *, received: str = "", socket: str = "") -> Response:
        """Answer one REGISTER.  ``received`` is ``transport:ip:port`` of the sender,
        ``socket`` our ``transport:ip:port`` it arrived on (both stored with bindings)."""
        note: list[str] = []
        unavailable = self.unavailable
        refused = unavailable.refuse(request) if unavailable.down_since is not None else None
        try:
            if refused is not None:  # the database failed a moment ago: not tried again yet
                response, aor = refused, str(request.to.uri)
            else:
                response, aor = self._handle(request, received, socket, note)
                if response.status == 200:
                    unavailable.succeeded()
        except ParseError as exc:
            response, aor = make_response(request, exc.status or 400, exc.reason, to_tag=new_tag()), "?"
        except Exception as exc:  # noqa: BLE001 - a database failure must answer, not crash
            aor = "?"
            if is_database_error(exc):  # 503 + Retry-After, logged once per outage
                response = unavailable.failed(exc, request)
            else:
                log.exception("registrar: REGISTER failed")
                response = make_response(request, 500, "Server Internal Error", to_tag=new_tag(),
                                         headers=[("Retry-After", "5")])
        # One info line per registration decision; the routine first 401 only at debug.
        level = logging.INFO
        if response.status == 401 and not request.headers.get("authorization"):
            level = logging.DEBUG
        log.log(level, "REGISTER %s from %s: %d %s%s%s", aor, received or "-", response.status,
                response.reason, self._summary(response), "".join(note))
        return response

    @staticmethod
    def _summary(response: Response) -> str:
        if response.status != 200:
            return ""
        return f" ({len(response.headers.getall('contact'))} bindings)"

    def _handle(self, request: Request, received: str, socket: str, note: list[str]) -> tuple[Response, str]:
        to = request.to
        if not to.uri.is_sip or not to.uri.user or not to.uri.host:
            return make_response(request, 400, "Bad To Address-of-Record", to_tag=new_tag()), str(to.uri)
        username, domain = to.uri.user, to.uri.host.lower()
        aor = f"{username}@{domain}"
        if not self.directory.is_local_domain(domain):
            # Never relayed: a registrar for someone else's domain is an open door.
            return make_response(request, 403, "Domain Not Served Here", to_tag=new_tag()), aor

        verdict = self.authenticator.check(request, domain, source=received)
        if verdict.response is not None:
            if verdict.result.status != digest.MISSING:
                note.append(f" (authentication as {verdict.result.username!r}: {verdict.result.reason})")
            return verdict.response, aor
        account = verdict.account
        if account is None or account.username != username:
            note.append(f" (authenticated as {verdict.result.username!r})")
            return make_response(request, 403, "Authentication User Does Not Match To",
                                 to_tag=new_tag()), aor
        if account.blocked:
            return make_response(request, 403, "Account Blocked", to_tag=new_tag()), aor

        call_id = request.call_id or ""
        cseq = request.cseq[0]
        contacts = request.contacts
        path = tuple(request.headers.getall("path"))
        supports_path = "path" in {v.strip().lower() for v in request.headers.getall("supported")}
        now = self._clock()

        if contacts == "*":
            if request.expires != 0:
                return make_response(request, 400, "Wildcard Contact Needs Expires: 0", to_tag=new_tag()), aor
            current = self.location.update(username, domain, remove_all=True, call_id=call_id, cseq=cseq)
            return self._ok(request, current, now, path if supports_path else ()), aor

        header_expires = request.expires
        if header_expires is None and request.headers.get("expires") is not None:
            return make_response(request, 400, "Bad Expires", to_tag=new_tag()), aor
        save: list[Binding] = []
        remove: list[str] = []
        user_agent = request.headers.get("user-agent") or ""
        for contact in contacts:  # type: ignore[union-attr]
            params = contact.params
            expires = self._expires(contact, header_expires)
            if expires is None:
                return make_response(request, 400, "Bad Contact Expires", to_tag=new_tag()), aor
            if 0 < expires < self.min_expires:
                return make_response(request, 423, to_tag=new_tag(),
                                     headers=[("Min-Expires", str(self.min_expires))]), aor
            q = 1.0
            if params.get("q") is not None:
                q = contact.q  # type: ignore[assignment]
                if q is None:
                    return make_response(request, 400, "Bad Contact q-value", to_tag=new_tag()), aor
            uri = str(contact.uri)
            if len(uri) > 1024:
                return make_response(request, 400, "Contact URI Too Long", to_tag=new_tag()), aor
            if expires == 0:
                remove.append(uri)
                continue
            instance = (params.get("+sip.instance") or "").strip('"')
            reg_id = params.get("reg-id") or "0"
            save.append(Binding(
                contact=uri, expires=now + min(expires, self.max_expires),
                q=q, received=received, socket=socket,
                path=path, call_id=call_id, cseq=cseq, user_agent=user_agent, instance=instance,
                reg_id=int(reg_id) if reg_id.isdigit() and len(reg_id) < 10 else 0,
                behind_nat=self._behind_nat(contact, received),
            ))
        if save or remove:
            try:
                current = self.location.update(username, domain, save=save, remove=remove,
                                               call_id=call_id, cseq=cseq, max_contacts=self.max_contacts)
            except OutOfOrder:
                return make_response(request, 500, "Out Of Order Request", to_tag=new_tag(),
                                     headers=[("Retry-After", "1")]), aor
            except TooManyContacts:
                return make_response(request, 403, "Too Many Contacts", to_tag=new_tag()), aor
        else:
            current = self.location.lookup(username, domain)  # a query: just list them
        return self._ok(request, current, now, path if supports_path else ()), aor

    def _expires(self, contact: NameAddr, header_expires: int | None) -> int | None:
        if contact.params.get("expires") is not None:
            return contact.expires  # None when malformed
        if header_expires is not None:
            return header_expires
        return self.default_expires

    @staticmethod
    def _behind_nat(contact: NameAddr, received: str) -> bool:
        """The Contact does not name the address the REGISTER came from: a NAT in between."""
        if not received:
            return False
        _transport, host, port = split_address(received)
        uri = contact.uri
        c_port = uri.port or (5061 if uri.scheme.lower() == "sips" else 5060)
        return uri.host.strip("[]").lower() != host.lower() or c_port != port

    def _ok(self, request: Request, bindings: list[Binding], now: float, path: tuple[str, ...]) -> Response:
        headers: list[tuple[str, str]] = []
        for b in bindings:
            value = f"<{b.contact}>;expires={b.remaining(now)}"
            if b.q != 1.0:
                value += f";q={b.q:.3g}"
            headers.append(("Contact", value))
        if path:
            headers.append(("Path", ", ".join(path)))
            headers.append(("Supported", "path"))
        headers.append(("Date", _http_date(now)))
        return make_response(request, 200, to_tag=new_tag(), headers=headers)


__all__ = ["Registrar", "split_address"]
