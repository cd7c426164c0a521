"""Sending a request along a route set (RFC 3261 12.2.1.1, 16.6 step 6, 16.12).

One rule, used by the proxy for in-dialog and pre-routed requests and by call control for
the BYEs it sends itself: the next hop is the first Route; a strict router (a first Route
without ``lr``) must get the request with its own URI as the Request-URI, the old
Request-URI moving to the end of the Route set.
"""

from __future__ import annotations

from sipproxy.sip.messages import Request
from sipproxy.sip.uri import URI, parse_name_addr

__all__ = ["apply_route_set"]


def apply_route_set(req: Request) -> URI:
    """The next hop of ``req``, which carries a Route set (its first Route).  For a strict
    router ``req`` is changed as the module's text says.  Raises ParseError for a malformed
    Route."""
    values = req.headers.getall("route")
    first = parse_name_addr(values[0]).uri
    if not first.lr:
        req.headers.remove("route")
        for v in values[1:]:
            req.headers.add("Route", v)
        req.headers.add("Route", f"<{req.uri}>")
        req.uri = first.copy()
    return first
