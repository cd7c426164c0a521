"""The SIP message layer (RFC 3261 sections 7, 8, 18-20, 25), sans-I/O, standard library only.

* :mod:`.grammar` -- tokens, quoted strings, parameters, :class:`ParseError` (25);
* :mod:`.uri` -- SIP/SIPS/tel URIs and name-addr values (19.1, 20.10; RFC 3966);
* :mod:`.headers` -- the header field list and the Via value (7.3, 20.42);
* :mod:`.messages` -- :class:`Request`, :class:`Response`, ``make_response`` (7, 8.2.6);
* :mod:`.parser` -- bytes to messages, eagerly checking what a proxy must (7, RFC 4475);
* :mod:`.framing` -- TCP/TLS stream framing by Content-Length (18.3; RFC 5626 keepalives);
* :mod:`.sdp` -- SDP as the media relay needs it (RFC 8866);
* :mod:`.digest` -- digest challenges and credentials (22; RFC 7616, RFC 8760);
* :mod:`.ids` -- tags and branches (19.3, 8.1.1.7);
* :mod:`.addressing` -- transport addresses, where responses go (18.2.2; RFC 3581);
* :mod:`.routeset` -- sending along a route set, strict routers (12.2.1.1, 16.6);
* :mod:`.transaction` -- the transaction state machines and layer (17; RFC 6026).

May import only the standard library and itself (no gevent, socket or SQLAlchemy), so it
can be tested, fuzzed and compiled without the rest.

The install compiles these modules (not this file) with mypyc when it can (``setup.py``;
docs/sipproxy.md "Compiled message layer"): an extension module beside each .py, which the
import system prefers.  `build` tells which this process runs; an extension older than its
source (an editable install whose .py was changed since) is warned about on import, since
it would run the old code -- ``pip install -e .`` (which ``scripts/test`` and
``scripts/run`` do) rebuilds it.
"""

from __future__ import annotations

import os as _os
import warnings as _warnings
from importlib.util import find_spec as _find_spec


def _stale_extensions() -> list[str]:
    """The compiled modules' .py files changed since the build: newer than the extension
    module holding the code of them all (``sipproxy_sip__mypyc``, see setup.py; the one
    beside each .py only hands over to it, and a rebuild may leave that one untouched)."""
    here = _os.path.dirname(__file__)
    shims = []
    for folder in (here, _os.path.join(here, "transaction")):
        try:
            shims += [(folder, n) for n in _os.listdir(folder) if n.endswith((".so", ".pyd"))]
        except OSError:
            continue
    if not shims:
        return []  # the pure build
    spec = _find_spec("sipproxy_sip__mypyc")
    if spec is None or not spec.origin:
        return []
    built = _os.stat(spec.origin).st_mtime
    stale = []
    for folder, name in shims:
        source = _os.path.join(folder, name.partition(".")[0] + ".py")
        try:
            if _os.stat(source).st_mtime > built:
                stale.append(source)
        except OSError:
            continue
    return stale


def build() -> str:
    """``"compiled (mypyc)"`` when the message layer runs as extension modules, else
    ``"pure Python"`` (say, for ``--version`` and the start-up log)."""
    from sipproxy.sip import parser

    return "pure Python" if parser.__file__.endswith(".py") else "compiled (mypyc)"


if _stale := _stale_extensions():
    _warnings.warn(
        "sipproxy.sip: the compiled modules are older than their source and run the old code "
        f"({', '.join(sorted(_os.path.basename(p) for p in _stale))}); rebuild with "
        "`pip install -e .` (scripts/test does it) or set MSP_PURE_PYTHON=1 and reinstall",
        RuntimeWarning, stacklevel=2)
