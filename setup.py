"""Build step of the install: compile the SIP message layer (sipproxy/sip) with mypyc.

The metadata lives in setup.cfg; this file only adds the extension modules.  The modules
listed in COMPILED stay plain Python files: the compiled build puts one extension module
next to each (``grammar.cpython-311-*.so`` beside ``grammar.py``; an editable install builds
them in place) plus the one holding their code (``sipproxy_sip__mypyc*.so``, top level), and
the import system takes the extension over the .py.  Nothing is compiled
-- a pure Python install, which runs the same -- when

* ``MSP_PURE_PYTHON=1`` is set (the "pure build"; CI tests the message layer both ways), or
* mypyc cannot be imported (``mypy`` is a build requirement in pyproject.toml), or
* no C compiler with the Python headers works here (scripts/_venv.sh installs gcc and
  python3-dev when run as root).

docs/sipproxy.md "Compiled message layer" tells more.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import tempfile

from setuptools import setup

#: the modules mypyc compiles: the message layer and the transaction package (not their
#: package __init__ files, which only document and re-export)
COMPILED = [
    "sipproxy/sip/grammar.py",
    "sipproxy/sip/uri.py",
    "sipproxy/sip/headers.py",
    "sipproxy/sip/parser.py",
    "sipproxy/sip/messages.py",
    "sipproxy/sip/framing.py",
    "sipproxy/sip/digest.py",
    "sipproxy/sip/ids.py",
    "sipproxy/sip/addressing.py",
    "sipproxy/sip/routeset.py",
    "sipproxy/sip/sdp.py",
    "sipproxy/sip/transaction/machine.py",
    "sipproxy/sip/transaction/layer.py",
    "sipproxy/sip/transaction/effects.py",
]


def _say(text: str) -> None:
    print(f"msp setup.py: {text}", file=sys.stderr)


def _compiler_works() -> bool:
    """True when the C compiler setuptools would use builds a file including Python.h."""
    # (setuptools provides distutils, on Python 3.12+ too, as mypyc uses it)
    from distutils import ccompiler
    from distutils import sysconfig as dsysconfig

    try:
        compiler = ccompiler.new_compiler()
        dsysconfig.customize_compiler(compiler)
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write("#include <Python.h>\nint probe(void) { return Py_IsInitialized(); }\n")
            compiler.compile([src], output_dir=tmp,
                             include_dirs=[sysconfig.get_paths()["include"]])
        return True
    except Exception as exc:  # CompileError, a missing compiler (OSError) ...
        _say(f"no working C compiler with Python headers ({exc.__class__.__name__}: {exc})")
        return False


def _why_pure() -> str | None:
    """Why the message layer cannot or must not be compiled here; None: compile it."""
    if os.environ.get("MSP_PURE_PYTHON", "") not in ("", "0"):
        return "MSP_PURE_PYTHON is set"
    if sys.implementation.name != "cpython":
        return "not CPython"
    try:
        import mypyc.build  # noqa: F401
    except ImportError:
        return "mypyc is not importable"
    if not _compiler_works():
        return "no C compiler"
    return None


def _remove_built_in_place() -> None:
    """Take away the extension modules an earlier editable install built in this tree: the
    import system would prefer them to the .py files (running the old code)."""
    here = os.path.dirname(os.path.abspath(__file__))
    folders = {os.path.join(here, os.path.dirname(path)) for path in COMPILED}
    for folder in sorted(folders | {here}):
        for name in os.listdir(folder):
            if name.endswith((".so", ".pyd")) and (
                    folder != here or name.startswith("sipproxy_sip__mypyc.")):
                _say(f"removing {os.path.relpath(os.path.join(folder, name), here)} (pure build)")
                os.remove(os.path.join(folder, name))


def _ext_modules() -> list:
    if sys.argv[1:2] in (["egg_info"], ["dist_info"]):
        return []  # the build's metadata steps: no need to translate anything yet
    why = _why_pure()
    if why is not None:
        _say(f"{why}: the message layer stays pure Python")
        _remove_built_in_place()
        return []
    from mypyc.build import mypycify

    _say(f"compiling {len(COMPILED)} modules of sipproxy/sip with mypyc")
    return mypycify(
        COMPILED,
        # the code of all of them is one extension module, sipproxy_sip__mypyc (top level,
        # beside the sipproxy package; an editable install maps it as it maps the packages),
        # which the extension module of each (beside its .py) hands over to
        group_name="sipproxy_sip",
        opt_level="3",
        debug_level="0",
    )


setup(ext_modules=_ext_modules())
