"""The layering rules of .importlinter fail on an import that breaks them, and only then.

Each test copies the four service packages and .importlinter into a temporary folder, adds a
probe module there and runs lint-imports in that folder, which is where lint-imports (it puts
the current directory first on sys.path) and grimp then find the packages.  The repository's
own tree is linted by scripts/test before pytest.

A cycle between a package and one of its own modules (sipproxy/sip/__init__.py <->
sipproxy/sip/parser.py) is no cycle between siblings, so the acyclic_siblings contract does not
see it; MODULE_CYCLES checks sipproxy module by module with grimp (in the tests below).
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("importlinter")
pytest.importorskip("grimp")

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ngnpro", "enumdns", "sipproxy", "mediaproxy")


# Every import inside sipproxy that lies on a cycle of module imports (TYPE_CHECKING ones left
# out, as in .importlinter); exit status 1 if there is one.
MODULE_CYCLES = """\
import sys
import grimp
graph = grimp.build_graph("sipproxy", exclude_type_checking_imports=True, cache_dir=None)
on_cycle = sorted(
    (importer, imported)
    for importer in graph.modules
    for imported in graph.find_modules_directly_imported_by(importer)
    if graph.chain_exists(imported, importer)
)
for importer, imported in on_cycle:
    print(f"{importer} -> {imported} is on an import cycle")
sys.exit(1 if on_cycle else 0)
"""


def _contract_names() -> dict[str, str]:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    prefix = "importlinter:contract:"
    return {s[len(prefix):]: config[s]["name"] for s in config.sections() if s.startswith(prefix)}


NAMES = _contract_names()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=ignore)
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def _write(tree: Path, path: str, source: str) -> None:
    target = tree / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if not (target.parent / "__init__.py").exists():
        (target.parent / "__init__.py").write_text("")
    target.write_text(textwrap.dedent(source))


def _run(tree: Path, code: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(tree), COLUMNS="200", NO_COLOR="1", TERM="dumb")
    if code is not None:
        command = [sys.executable, "-c", code]
    else:
        script = Path(sys.executable).with_name("lint-imports")
        command = [str(script)] if script.exists() else [
            sys.executable, "-c",
            "import sys; from importlinter.cli import lint_imports_command; "
            "sys.argv[0] = 'lint-imports'; lint_imports_command()",
        ]
        command += ["--no-cache", "--no-logo", ".importlinter"]
    return subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=60)


def _verdicts(output: str) -> dict[str, str]:
    """contract id -> KEPT or BROKEN, from lint-imports' summary lines."""
    verdicts = {}
    for contract_id, name in NAMES.items():
        match = re.search(rf"^{re.escape(name)} (KEPT|BROKEN)\b", output, re.MULTILINE)
        assert match, f"no verdict for {contract_id!r} in:\n{output}"
        verdicts[contract_id] = match.group(1)
    return verdicts


def _lint_broken(tree: Path) -> tuple[set[str], str]:
    result = _run(tree)
    output = result.stdout + result.stderr
    verdicts = _verdicts(output)
    broken = {c for c, v in verdicts.items() if v == "BROKEN"}
    assert (result.returncode != 0) == bool(broken), output
    return broken, output


def _assert_kept(tree: Path) -> None:
    """Every contract is kept."""
    broken, output = _lint_broken(tree)
    assert not broken, output


def test_unmodified_tree_keeps_the_contracts(tree: Path) -> None:
    _assert_kept(tree)


def test_unmodified_tree_has_no_module_level_cycle_in_sipproxy(tree: Path) -> None:
    result = _run(tree, code=MODULE_CYCLES)
    assert result.returncode == 0, result.stdout + result.stderr


# (probe module, its source, source package reported, forbidden module reported); the probes
# go into one tree, so that lint-imports runs once for all of them.
IO_PROBES = [
    ("sipproxy/sip/_probe_gevent.py", "import gevent\n", "sipproxy.sip", "gevent"),
    ("sipproxy/sip/transaction/_probe.py", "from sqlalchemy.orm import Session\n",
     "sipproxy.sip", "sqlalchemy"),
    ("sipproxy/sip/_probe_socket.py", "def f():\n    import socket\n", "sipproxy.sip", "socket"),
    ("sipproxy/proxy/_probe.py", "import ssl\n", "sipproxy.proxy", "ssl"),
    ("sipproxy/routing/_probe.py", "from gevent import socket\n", "sipproxy.routing", "gevent"),
    ("sipproxy/auth/_probe_selectors.py", "import selectors\n", "sipproxy.auth", "selectors"),
    # Indirectly: sipproxy.runtime.transport imports gevent and the sockets.
    ("sipproxy/auth/_probe_runtime.py", "import sipproxy.runtime.transport\n", "sipproxy.auth",
     "_socket"),
]


def test_sip_core_importing_io_breaks(tree: Path) -> None:
    for path, source, _, _ in IO_PROBES:
        _write(tree, path, source)
    broken, output = _lint_broken(tree)
    assert "sipproxy-core-no-io" in broken
    for path, _, importer, imported in IO_PROBES:
        assert f"{importer} is not allowed to import {imported}:" in output, output
        assert f"{path[:-3].replace('/', '.')} -> " in output, output


def test_import_under_type_checking_is_no_dependency(tree: Path) -> None:
    _write(tree, "sipproxy/sip/_probe.py", """\
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import gevent
            import sipproxy.sip._probe_back
        """)
    _write(tree, "sipproxy/sip/_probe_back.py", "import sipproxy.sip._probe\n")
    _assert_kept(tree)
    assert _run(tree, code=MODULE_CYCLES).returncode == 0


@pytest.mark.parametrize(
    ("modules", "needle"),
    [
        ({"enumdns/_probe.py": "import sipproxy.sip.parser\n"},
         "enumdns is not allowed to import sipproxy:"),
        ({"sipproxy/_probe.py": "from ngnpro.soap import faults\n"},
         "sipproxy is not allowed to import ngnpro:"),
        ({"mediaproxy/_probe.py": "def f():\n    import ngnpro.server\n"},
         "mediaproxy is not allowed to import ngnpro:"),
        # A sub-package of ngnpro that does not exist yet is covered as well.
        ({"ngnpro/billing/__init__.py": "", "enumdns/_probe.py": "import ngnpro.billing\n"},
         "enumdns is not allowed to import ngnpro:"),
        # ngnpro.models is ngnpro's: shared with the services, it imports none of them.
        ({"ngnpro/models/_probe.py": "import mediaproxy.relay\n"},
         "ngnpro is not allowed to import mediaproxy:"),
    ],
)
def test_service_importing_another_breaks(tree: Path, modules: dict[str, str],
                                          needle: str) -> None:
    for path, source in modules.items():
        _write(tree, path, source)
    broken, output = _lint_broken(tree)
    assert "services-independent" in broken
    assert needle in output


def test_every_service_may_import_ngnpro_models(tree: Path) -> None:
    for service in ("enumdns", "sipproxy", "mediaproxy"):
        _write(tree, f"{service}/_probe.py", """\
            import ngnpro.models
            from ngnpro.models import base, sip
            from ngnpro.models.config import Config
            """)
    _assert_kept(tree)


def test_ngnpro_models_importing_the_rest_of_ngnpro_breaks(tree: Path) -> None:
    _write(tree, "ngnpro/billing/__init__.py", "")  # a sub-package that does not exist yet
    imported = ("ngnpro.soap.faults", "ngnpro.server", "ngnpro.billing")
    _write(tree, "ngnpro/models/_probe.py", "def f():\n" + "".join(
        f"    import {module}\n" for module in imported))
    broken, output = _lint_broken(tree)
    assert "ngnpro-models-shared" in broken
    for module in imported:
        child = ".".join(module.split(".")[:2])  # the forbidden modules are ngnpro.*: children
        assert f"ngnpro.models is not allowed to import {child}:" in output, output
        assert f"ngnpro.models._probe -> {module} " in output, output


@pytest.mark.parametrize(
    ("modules", "needle"),
    [
        ({"sipproxy/dialog/_probe.py": "import sipproxy.media.relay\n",
          "sipproxy/media/_probe.py": "import sipproxy.dialog._probe\n"},
         "No cycles are allowed in sipproxy."),
        ({"sipproxy/sip/_probe_a.py": "from sipproxy.sip import _probe_b\n",
          "sipproxy/sip/_probe_b.py": "import sipproxy.sip._probe_a\n"},
         "No cycles are allowed in sipproxy.sip."),
    ],
)
def test_cycle_in_sipproxy_breaks(tree: Path, modules: dict[str, str], needle: str) -> None:
    for path, source in modules.items():
        _write(tree, path, source)
    broken, output = _lint_broken(tree)
    assert "sipproxy-acyclic" in broken
    assert needle in output


def test_package_importing_its_own_module_and_back_breaks(tree: Path) -> None:
    init = tree / "sipproxy/sip/__init__.py"
    init.write_text(init.read_text() + "from sipproxy.sip import _probe\n")
    _write(tree, "sipproxy/sip/_probe.py", "import sipproxy.sip\n")
    assert "sipproxy-acyclic" not in _lint_broken(tree)[0]  # no cycle between siblings
    result = _run(tree, code=MODULE_CYCLES)
    assert result.returncode == 1
    assert "sipproxy.sip._probe -> sipproxy.sip is on an import cycle" in result.stdout
