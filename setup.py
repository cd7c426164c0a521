"""Build step of the install: compile the SIP message layer (sipproxy/sip) with mypyc.

The metadata lives in setup.cfg; this file only adds the extension modules.  The modules
listed in COMPILED stay plain Python files: the compiled build puts one extension module
next to each (``grammar.cpython-311-*.so`` beside ``grammar.py``; an editable install builds
them in place), and the import system takes the extension over the .py.  Nothing is compiled
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
    from setuptools._distutils import ccompiler, sysconfig as dsysconfig  # noqa: PLC0415

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


def _ext_modules() -> list:
    if os.environ.get("MSP_PURE_PYTHON", "") not in ("", "0"):
        _say("MSP_PURE_PYTHON is set: the message layer stays pure Python")
        return []
    if sys.implementation.name != "cpython":
        _say("not CPython: the message layer stays pure Python")
        return []
    try:
        from mypyc.build import mypycify  # noqa: PLC0415
    except ImportError:
        _say("mypyc is not importable: the message layer stays pure Python")
        return []
    if not _compiler_works():
        _say("the message layer stays pure Python")
        return []
    _say(f"compiling {len(COMPILED)} modules of sipproxy/sip with mypyc")
    return mypycify(
        COMPILED,
        # one shared library inside the package, so the editable install's finder (which
        # maps only the project's packages) finds it beside the modules
        group_name="sipproxy.sip._compiled",
        opt_level="3",
        debug_level="0",
    )


setup(ext_modules=_ext_modules())
