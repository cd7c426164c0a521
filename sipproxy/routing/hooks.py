"""Site hooks: the operator's Python at the routing guide's hook points (DESIGN.md).

The routing guide's siteconfig hooks become one Python module per hook point in the
``[sipproxy] siteconfig`` folder; the core routing calls each at its place.  A hook may
answer the request (return a Response) or let routing go on (None).  Loading the folder
comes with the routing issue; until then :class:`Hooks` answers None at every point.
"""

from __future__ import annotations

from typing import Any

from sipproxy.sip.parser import Request, Response

__all__ = ["HOOK_POINTS", "Hooks"]

HOOK_POINTS = (
    "preprocess_request", "preprocess_uri", "handle_local_extensions", "handle_incoming_pstn",
    "handle_outgoing_peers", "preprocess_pstn", "postprocess_request",
)


class Hooks:
    """The site hook dispatcher (DESIGN.md "Routing logic and site hooks").

    Every point answers None until the siteconfig loader comes (see the module's text);
    the proxy already calls each at its place.
    """

    def call(self, point: str, request: Request, **context: Any) -> Response | None:
        return None
