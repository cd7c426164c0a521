"""Where a relay sends a request (RFC 4976 section 7.3), and which paths it serves.

A relay serves only the URIs it handed out in the ``Use-Path`` of a successful AUTH (a
*reservation*).  A request is forwarded only when its To-Path starts with one of them:

- arriving on the connection of the client that reserved it, it goes *outbound* to the next
  To-Path URI (the peer, or the peer's relay);
- arriving on any other connection, it goes *inbound* to the reserving client, and the rest
  of the To-Path must be that client alone.

So no one can use the relay to reach a host the client behind the URI did not name: that is
RFC 4976's "no open relay".  Forwarding removes the relay's URI from the To-Path and puts
it in front of the From-Path, so responses and REPORTs find their way back.  This module
decides and rewrites; it does no I/O.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from .message import Message, new_transaction_id
from .uri import MsrpUri

__all__ = ["Reservation", "Forward", "Refuse", "Reservations", "forwarded_copy"]


@dataclass
class Reservation:
    """A relay URI handed to an authenticated client: ``uri`` leads to ``owner``."""

    uri: MsrpUri
    owner: Hashable
    client_host: str
    username: str
    expires_at: float
    messages: int = 0          # whole messages (last chunks of SENDs) relayed through it
    bytes: int = 0             # body bytes relayed through it


@dataclass
class Forward:
    """Send ``message`` (the rewritten head, with a transaction id of its own for the next
    hop) over the local connection ``connection``, or to ``next_hop`` when that is None.
    ``via`` is the relay URI the sender addressed: a REPORT about the request comes from it."""

    message: Message
    connection: Hashable | None
    next_hop: MsrpUri | None
    via: MsrpUri


@dataclass
class Refuse:
    """Do not forward: answer ``code``.  ``binding`` marks the one refusal that a body-less
    SEND turns into ``200``: the ACM's other party has not connected yet, and an empty SEND
    only binds the sender's connection (RFC 4975 section 5.4)."""

    code: int
    reason: str
    binding: bool = False


def forwarded_copy(head: Message, to_path: list[MsrpUri], from_path: list[MsrpUri]) -> Message:
    """The head as the next hop sees it: new paths, a new transaction id, the rest kept."""
    out = Message(new_transaction_id(), method=head.method, headers=list(head.headers))
    out.set("To-Path", " ".join(str(u) for u in to_path))
    out.set("From-Path", " ".join(str(u) for u in from_path))
    return out


@dataclass
class Reservations:
    """The relay's URIs: its listening ports and the reservations made on them.

    A URI without a session part is the relay's own on any of its ports, whatever host name
    the client used: the name chooses the realm (one relay serves several domains).  A URI
    with a session part is ours only if that session was reserved here (the session ids
    are 96 random bits), so another relay on the same port elsewhere is never mistaken for
    this one."""

    ports: set[int]
    #: the names and addresses of this relay (its listeners' and the advertised host): a
    #: next hop there is this relay, reserved here or nowhere
    hosts: set[str] = field(default_factory=set)
    clock: Callable[[], float] = time.time
    by_session: dict[str, Reservation] = field(default_factory=dict)

    def ours(self, uri: MsrpUri) -> bool:
        if uri.port not in self.ports:
            return False
        return not uri.session_id or uri.session_id in self.by_session

    def reserve(self, owner: Hashable, base: MsrpUri, client: MsrpUri, username: str, expires: int) -> Reservation:
        """A new URI under ``base`` (the relay URI the client addressed) for ``owner``."""
        session = secrets.token_hex(12)
        uri = MsrpUri(base.scheme, base.host, base.port, session, base.transport)
        res = Reservation(uri, owner, client.host.strip("[]").lower(), username, self.clock() + expires)
        self.by_session[session] = res
        return res

    def owned_by(self, owner: Hashable) -> int:
        return sum(1 for r in self.by_session.values() if r.owner == owner)

    def purge(self) -> list[Reservation]:
        """Forget the reservations whose Expires has passed (and answer them)."""
        now = self.clock()
        gone = [k for k, r in self.by_session.items() if r.expires_at < now]
        return [self.by_session.pop(k) for k in gone]

    def lookup(self, uri: MsrpUri) -> Reservation | None:
        res = self.by_session.get(uri.session_id)
        if res is None or uri.port != res.uri.port:
            return None
        if res.expires_at < self.clock():
            del self.by_session[uri.session_id]
            return None
        return res

    def drop_owner(self, owner: Hashable) -> list[Reservation]:
        """Forget the reservations of a connection that went away (and answer them)."""
        gone = [k for k, r in self.by_session.items() if r.owner == owner]
        return [self.by_session.pop(k) for k in gone]

    def route(self, arrived_on: Hashable | None, head: Message) -> Forward | Refuse:
        """Where the request ``head`` that arrived on ``arrived_on`` goes next."""
        to, frm = head.to_path, head.from_path
        first = to[0]
        if first.port not in self.ports:
            return Refuse(403, "To-Path does not start with this relay")
        if len(to) < 2:
            return Refuse(481, "nothing after this relay in the To-Path")
        res = self.lookup(first)
        if res is None:
            return Refuse(481, "no such reservation at this relay")
        rest, back = to[1:], [first, *frm]
        if arrived_on is not None and arrived_on == res.owner:
            nxt = rest[0]
            if self.ours(nxt):
                # both parties use this relay: carry on as if the request arrived from outside
                inner = self.route(None, forwarded_copy(head, rest, back))
                if isinstance(inner, Forward):
                    inner.via = first
                return inner
            if nxt.port in self.ports and nxt.host.strip("[]").lower() in self.hosts:
                return Refuse(481, "no such reservation at this relay")
            return Forward(forwarded_copy(head, rest, back), None, nxt, first)
        if len(rest) != 1 or rest[0].host.strip("[]").lower() != res.client_host:
            return Refuse(403, "this relay URI leads only to the client that reserved it")
        return Forward(forwarded_copy(head, rest, back), res.owner, None, first)
