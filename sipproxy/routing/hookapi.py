"""What a site hook may do (:mod:`sipproxy.routing.hooks`): the guide's routing primitives.

One :class:`HookAPI` is made per hook call.  Changes to the request (Request-URI, user part)
take effect at once; the three decisions -- :meth:`HookAPI.reply`, :meth:`HookAPI.send_out`,
:meth:`HookAPI.pstn_transit` -- end routing when the hook returns, the last one called wins.

The guide's handle-incoming-pstn example, in a hook::

    def hook(request, api):
        if api.source_ip == "201.176.11.13":          # a carrier's gateway
            api.log("call from carrier 1")
            api.set_domain(api.server_domain)
            api.prefix("+")
            api.set_billing_party(api.source_ip)
            if not api.enum_lookup():
                api.reply(404, "User not found")
            elif not api.is_local():
                api.reply(403, "Invalid destination")
"""

from __future__ import annotations

import logging
from typing import Any

from sipproxy.auth import policy
from sipproxy.sip.ids import new_tag
from sipproxy.sip.parser import make_response
from sipproxy.sip.uri import parse_uri, sip_id

__all__ = ["HookAPI"]

log = logging.getLogger("sipproxy.siteconfig")


class HookAPI:
    """The request's routing as a hook sees it (see the module's text)."""

    def __init__(self, router: Any, call: Any, point: str = "") -> None:
        self._router = router
        self._call = call
        #: the hook point this call is for (named in a refusal's default Warning)
        self.point = point
        #: what the hook decided: a Response, the router's Targets, or None (go on)
        self.outcome: Any = None

    # -- what the hook can read ---------------------------------------------------------

    @property
    def source_ip(self) -> str:
        """The address the request came from."""
        return self._call.inbound.source.host

    @property
    def account(self) -> Any:
        """The authenticated local subscriber sending the request (None: not one of ours)."""
        return self._call.account

    @property
    def from_trusted_peer(self) -> bool:
        """The request came from a trusted peer (a PBX, by its address)."""
        return self._call.trusted is not None and not self._call.gateway

    @property
    def from_gateway(self) -> bool:
        """The request came from one of the LCR's PSTN gateways."""
        return self._call.gateway

    def number(self) -> str | None:
        """The Request-URI's number in E.164 (``+CC...``) after the guide's settings
        (country_code, pstn_regexp ...), or None when it is not a number."""
        return self._router.plan.normalise_uri(self._call.request.uri)

    @property
    def server_domain(self) -> str:
        """The guide's SERVER_DOMAIN (``[sipproxy] server_domain``)."""
        return self._router.server_domain

    @property
    def billing_party(self) -> str:
        return self._call.billing_party

    def is_local(self, domain: str | None = None) -> bool:
        """``domain`` (default: the Request-URI's host) is served here."""
        if domain is None:
            return self._router.target_is_local(self._call)
        return self._router.is_local(domain)

    # -- changing the request ------------------------------------------------------------

    def set_uri(self, uri: str) -> None:
        """Set the Request-URI (raises ParseError for a malformed one)."""
        self._call.request.uri = parse_uri(uri)

    def set_domain(self, domain: str) -> None:
        """Set the host of the Request-URI."""
        uri = self._call.request.uri.copy()
        uri.host = domain
        self._call.request.uri = uri

    def strip(self, count: int) -> None:
        """Remove ``count`` characters from the start of the Request-URI's user part."""
        self._set_user((self._call.request.uri.user or "")[count:])

    def prefix(self, text: str) -> None:
        """Put ``text`` in front of the Request-URI's user part."""
        self._set_user(text + (self._call.request.uri.user or ""))

    def _set_user(self, user: str) -> None:
        uri = self._call.request.uri.copy()
        uri.user = user or None
        self._call.request.uri = uri

    def set_billing_party(self, party: str) -> None:
        """Who pays for this call (accounting reads it)."""
        self._call.billing_party = party

    def enum_lookup(self) -> bool:
        """ENUM (RFC 6116) on the Request-URI's number: True and the Request-URI set to the
        result when there is one."""
        uri = self._router.enum_lookup(self._call.request.uri)
        if uri is None:
            return False
        self._call.request.uri = uri
        return True

    # -- decisions ---------------------------------------------------------------------------

    def reply(self, status: int, reason: str = "", warning: str = "") -> None:
        """Answer the request with ``status`` (routing ends).

        A refusal (4xx to 6xx) is rule 7 of the outgoing and rule 6 of the incoming
        authorization, and like the others it says why in a ``Warning: 399`` header: the
        hook's ``warning`` text, else that this site hook refused it -- a caller's support
        desk must tell a site policy from a provisioning rule.  It is logged like them, with
        the account (or the caller's From), the source and the destination."""
        call = self._call
        req = call.request
        if status < 400:
            self.outcome = make_response(req, status, reason or None, to_tag=new_tag())
            return
        text = warning or f"Refused by the site hook {self.point or 'siteconfig'}"
        who = call.account.sip_id if call.account is not None else sip_id(req.from_.uri)
        log.warning("authorization: %s from %s (source %s) to %s refused by the site hook %s: %d %s (%s; call-id %s)",
                    req.method, who, call.inbound.source.host, req.uri, self.point, status, reason, text,
                    req.call_id)
        host = self._router.server_domain or call.inbound.listener.host
        self.outcome = make_response(req, status, reason or None, to_tag=new_tag(),
                                     headers=[policy.warning_header(host, text)])

    def send_out(self) -> None:
        """Forward the request to its Request-URI (RFC 3263 for a domain; routing ends)."""
        self.outcome = self._router.send_out(self._call)

    def pstn_transit(self) -> None:
        """Route the request to the PSTN through LCR (routing ends): the hook's decision,
        so the PSTN-access and transit checks are not asked again."""
        self.outcome = self._router.pstn(self._call, checked=True)

    def log(self, message: str) -> None:
        log.info("%s (call-id %s)", message, self._call.request.call_id)
