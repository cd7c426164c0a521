"""Request validation of a proxy (RFC 3261 16.3) and the loop mark of 16.6 step 8.

Syntax is checked by parsing (:mod:`sipproxy.sip.parser`); what is left for a proxy is
whether it may forward the request at all: the URI scheme (416), Max-Forwards (483),
Proxy-Require (420) and loops (482).  A loop is recognised by :func:`loop_hash`: each request
we forward carries, in our Via's branch, the hash of what makes it the same request; if it
comes back with one of our Vias carrying that very hash, it looped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sipproxy.sip.parser import Request, Response, make_response

__all__ = ["ROUTABLE_SCHEMES", "proxy_validate", "loop_hash"]


#: URI schemes a proxy can route (others get 416, RFC 3261 16.3 step 2)
ROUTABLE_SCHEMES = frozenset({"sip", "sips", "tel"})


def proxy_validate(request: Request, supported: Iterable[str] = ()) -> Response | None:
    """RFC 3261 16.3 request validation steps 2, 3 and 5 (syntax is checked by parsing).

    Returns the response to send -- 416 Unsupported URI Scheme, 483 Too Many Hops (Max-Forwards
    0; the caller answers an OPTIONS addressed to itself before calling this), 420 Bad
    Extension with Unsupported listing the Proxy-Require options not in ``supported`` -- or
    None when the request may be proxied. Loop detection and authorization are the proxy's.
    """
    scheme = request.uri.scheme
    if scheme not in ROUTABLE_SCHEMES and scheme.lower() not in ROUTABLE_SCHEMES:
        return make_response(request, 416)
    if request.max_forwards == 0:
        return make_response(request, 483)
    if "proxy-require" not in request.headers._keys:  # the usual case: nothing to check
        return None
    known = {s.lower() for s in supported}
    unsupported = [o for o in request.headers.getall("proxy-require") if o.lower() not in known]
    if unsupported:
        return make_response(request, 420, headers=[("Unsupported", ", ".join(unsupported))])
    return None


def loop_hash(request: Request) -> str:
    """What makes a request the same request again (16.6 step 8): a loop brings it back with
    all of these unchanged, a spiral (e.g. after alias translation) changes the URI."""
    h = request.headers
    data = "\0".join((
        str(request.uri), request.from_.tag or "", request.to.tag or "", request.call_id or "",
        str(request.cseq[0]), h.get("proxy-require") or "",
    ))
    return hashlib.sha1(data.encode("utf-8", "surrogateescape")).hexdigest()[:12]
