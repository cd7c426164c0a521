"""The one interface between the proxy's decisions and the I/O edge (a `typing.Protocol`).

Why: the proxy, its response handling, call control and routing are sans-I/O; they ask the
edge (:class:`sipproxy.runtime.edge.Core`, or a test double) to send, to answer, to start a
client transaction and to resolve a target, and never reach for its sockets or its
transaction table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from sipproxy.sip.addressing import Listener, Peer
from sipproxy.sip.parser import Request, Response
from sipproxy.sip.transaction import Transaction
from sipproxy.sip.uri import URI

__all__ = ["Edge"]


class Edge(Protocol):
    """What the proxy needs of the I/O: one object per proxy process."""

    def respond(self, txn: Transaction, response: Response) -> None:
        """Answer a request through its server transaction."""

    def reply_stateless(self, txn: Transaction, response: Response) -> None:
        """Answer a new request without keeping its transaction (RFC 3261 8.2.7)."""

    def send_request(self, request: Request, dest: Peer, branch: str | None = None) -> Transaction | None:
        """Start a client transaction; ``request`` carries our Via (of ``branch``) on top."""

    def forward(self, message: Request | Response, dest: Peer) -> bool:
        """Send without a transaction (ACK for a 2xx, a stray 2xx); False when it failed."""

    def resolve(self, uri: URI) -> Peer | None:
        """The transport address to send a request for ``uri`` to (RFC 3263), or None."""

    def connected(self, peer: Peer) -> bool:
        """Whether a TCP/TLS connection to ``peer`` is open (a phone's own, behind NAT)."""

    def is_me(self, host: str | None, port: int | None) -> bool:
        """Whether ``host:port`` names one of our listeners."""

    def listener_for(self, transport: str, host: str | None = None) -> Listener | None:
        """The listener a request to ``host`` over ``transport`` leaves from."""

    def via_for(self, listener: Listener, branch: str) -> str:
        """Our Via value for a request sent from ``listener`` with ``branch``."""

    def record_route_listener(self, listener: Listener) -> Listener:
        """The address our Record-Route names for ``listener`` (a worker's own port)."""

    def branch_suffix(self) -> str:
        """The unique part of a branch of ours."""

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn(*args)`` after about ``delay`` seconds; the handle has ``cancel()``."""

    def match_cancel(self, cancel: Request) -> Transaction | None:
        """The INVITE server transaction a CANCEL cancels (RFC 3261 9.2), if any."""
