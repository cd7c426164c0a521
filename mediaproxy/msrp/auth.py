"""The relay's AUTH (RFC 4976 section 5): digest against the account's SIP credentials.

A client sends AUTH to the relay's URI; the relay challenges (``401``, one
``WWW-Authenticate`` per algorithm, SHA-256 before MD5), checks the answer against the
stored HA1 of the account (the realm is the account's domain) and on success reserves a URI
for the client: ``200`` with ``Use-Path`` and ``Expires``.  This module decides the answer;
the caller gives it the transport's security and the SQL look-ups.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import replace

from ngnpro.models.digest import MALFORMED, OK, STALE, DigestAuth

from .forwarding import Reservations
from .message import Message, make_response

__all__ = ["Authenticator"]

log = logging.getLogger("mediaproxy.msrp.auth")

#: (username, realm, algorithm) -> stored HA1, or None
CredentialLookup = Callable[[str, str, str], "str | None"]
#: a host name -> the provisioned domain it belongs to, or None
RealmLookup = Callable[[str], "str | None"]


class Authenticator:
    """Answers AUTH requests and makes the reservations."""

    def __init__(self, digest: DigestAuth, reservations: Reservations, credentials: CredentialLookup,
                 realm_for: RealmLookup, default_realm: str = "", min_expires: int = 60,
                 max_expires: int = 3600, advertised_host: str = "", max_per_connection: int = 16) -> None:
        self.digest = digest
        self.reservations = reservations
        self.credentials = credentials
        self.realm_for = realm_for
        self.default_realm = default_realm
        self.min_expires = min_expires
        self.max_expires = max_expires
        #: the host written into Use-Path (empty: the name the client addressed)
        self.advertised_host = advertised_host
        #: reservations one connection may hold (each AUTH makes one: bounded memory)
        self.max_per_connection = max_per_connection

    def realm(self, host: str) -> str | None:
        """The realm of a relay host name: the provisioned domain it is (or is under), else
        the configured default realm."""
        return self.realm_for(host.strip("[]").lower()) or self.default_realm or None

    def handle(self, request: Message, conn: Hashable, secure: bool, kind: str = "tls") -> Message:
        """The response to an AUTH that arrived on ``conn``, a connection of the listener
        ``kind`` (tls, tcp, ws, wss): the reserved URI says how to reach the relay there --
        ``msrps`` over TLS and WSS, transport ``ws`` on WebSocket (RFC 7977 section 5)."""
        if not secure:
            return make_response(request, 403, "AUTH needs TLS")
        to, frm = request.to_path, request.from_path
        if len(to) != 1 or not self.reservations.ours(to[0]):
            return make_response(request, 403, "AUTH must be addressed to this relay alone")
        realm = self.realm(to[0].host)
        if realm is None:
            return make_response(request, 403, "no domain served at this relay name")
        expires = self.max_expires
        asked = request.get("Expires")
        if asked is not None:
            expires = int(asked)
            if expires < self.min_expires:
                return make_response(request, 423, extra=[("Min-Expires", str(self.min_expires))])
            if expires > self.max_expires:
                return make_response(request, 423, extra=[("Max-Expires", str(self.max_expires))])
        result = self.digest.verify(request.get_all("Authorization"), method="AUTH", realm=realm,
                                    lookup=lambda user, alg: self.credentials(user, realm, alg))
        if result.status == MALFORMED:
            return make_response(request, 400, "malformed Authorization")
        if result.status == OK and self.reservations.owned_by(conn) >= self.max_per_connection:
            return make_response(request, 403, "too many reservations on this connection")
        if result.status != OK:
            if result.username:
                log.info("AUTH for %s@%s refused: %s", result.username, realm, result.reason)
            return make_response(request, 401, extra=self.digest.challenge(realm, stale=result.status == STALE))
        base = replace(to[0], host=self.advertised_host or to[0].host, user="", scheme="msrps" if kind in ("tls", "wss") else "msrp",
                       transport="ws" if kind in ("ws", "wss") else "tcp", params="")
        res = self.reservations.reserve(conn, base, frm[0], f"{result.username}@{realm}", expires)
        log.info("AUTH %s@%s (%s): reserved %s for %ss", result.username, realm, result.algorithm, res.uri, expires)
        return make_response(request, 200, extra=[("Use-Path", str(res.uri)), ("Expires", str(expires))])
