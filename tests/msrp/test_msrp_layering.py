"""The import-linter contract of the pure MSRP layer breaks on an import that breaks it
(the same check tests/foundation/test_layering.py makes for the other contracts)."""

from __future__ import annotations

from pathlib import Path

from tests.foundation.test_layering import _lint_broken, _write, tree  # noqa: F401  (tree: a fixture)

PROBES = [
    ("mediaproxy/msrp/parser_probe.py", "import gevent\n", "gevent"),
    ("mediaproxy/msrp/forwarding_probe.py", "def f():\n    import socket\n", "socket"),
    ("mediaproxy/msrp/auth_probe.py", "from sqlalchemy import select\n", "sqlalchemy"),
]


def test_msrp_core_importing_io_breaks(tree: Path) -> None:  # noqa: F811
    contract = (tree / ".importlinter").read_text()
    for path, source, _ in PROBES:
        _write(tree, path, source)
        module = path[:-3].replace("/", ".")
        contract = contract.replace("    mediaproxy.msrp.auth\n", f"    mediaproxy.msrp.auth\n    {module}\n", 1)
    (tree / ".importlinter").write_text(contract)
    broken, output = _lint_broken(tree)
    assert broken == {"msrp-core-no-io"}, output
    for path, _, imported in PROBES:
        assert f"{path[:-3].replace('/', '.')} is not allowed to import {imported}" in output, output


def test_msrp_core_importing_sipproxy_breaks(tree: Path) -> None:  # noqa: F811
    _write(tree, "mediaproxy/msrp/message.py", (tree / "mediaproxy/msrp/message.py").read_text()
           + "\nimport sipproxy.sip.message  # noqa\n")
    broken, output = _lint_broken(tree)
    assert "msrp-core-no-io" in broken and "services-independent" in broken, output
