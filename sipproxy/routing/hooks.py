"""Site hooks: the operator's Python at the routing guide's hook points (DESIGN.md).

The guide's siteconfig files become one Python module per hook point in the ``[sipproxy]
siteconfig`` folder (``preprocess_request.py``, ``preprocess_uri.py`` ...), never shipped
over by an upgrade.  A module defines ``hook(request, api)``; ``request`` is the SIP request
being routed, ``api`` a :class:`HookAPI`: what the guide's m4 hooks do with OpenSIPS
primitives (reply, set the Request-URI, strip and prefix, ENUM lookup, set the billing party,
PSTN transit, send out, log).  A hook that does none of reply / PSTN transit / send out lets
routing go on.  A hook that raises is logged with its name, and routing goes on as if it were
absent: an operator's mistake must not take calls down.

The points, in the order routing meets them: ``preprocess_request`` (before anything else,
authentication too), ``preprocess_uri``, ``handle_incoming_pstn`` (requests from a trusted
peer or gateway), ``handle_local_extensions``, ``preprocess_pstn`` (before LCR),
``handle_outgoing_peers`` (non-local domains) and ``postprocess_request`` (the targets are
known).  Loading reads the folder once, at start-up.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["HOOK_POINTS", "Hooks", "HookError"]

log = logging.getLogger("sipproxy.routing")

HOOK_POINTS = (
    "preprocess_request", "preprocess_uri", "handle_incoming_pstn", "handle_local_extensions",
    "preprocess_pstn", "handle_outgoing_peers", "postprocess_request",
)


class HookError(Exception):
    """The siteconfig folder holds a hook module that cannot be loaded (at start-up)."""


class Hooks:
    """The hook modules of a siteconfig folder (none: every point does nothing)."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.functions: dict[str, Callable[..., Any]] = {}
        if folder:
            self.load(Path(folder))

    def load(self, folder: Path) -> None:
        """Load ``folder/<point>.py`` for each hook point there is a file for.  A file that
        does not import, or defines no ``hook``, is a :class:`HookError` (the service does
        not start with a broken hook rather than route without it unnoticed)."""
        if not folder.is_dir():
            return
        for point in HOOK_POINTS:
            path = folder / f"{point}.py"
            if not path.is_file():
                continue
            spec = importlib.util.spec_from_file_location(f"siteconfig.{point}", path)
            if spec is None or spec.loader is None:
                raise HookError(f"{path}: cannot be loaded")
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                raise HookError(f"{path}: {type(exc).__name__}: {exc}") from exc
            function = getattr(module, "hook", None)
            if not callable(function):
                raise HookError(f"{path}: defines no hook(request, api) function")
            self.functions[point] = function
            log.info("site hook %s loaded from %s", point, path)

    def __contains__(self, point: str) -> bool:
        return point in self.functions

    def run(self, point: str, request: Any, api: Any) -> bool:
        """Run the hook of ``point`` (if any); its decisions are left on ``api``.  False
        when it raised (logged): its decisions are to be ignored."""
        function = self.functions.get(point)
        if function is None:
            return True
        try:
            function(request, api)
        except Exception:
            log.exception("site hook %s failed; routing goes on without it", point)
            return False
        return True
