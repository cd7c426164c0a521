# Sourced by scripts/run and scripts/test: make .venv with the project installed (editable).
# $1: pip extras, e.g. "[test]" or "".
#
# The install compiles the SIP message layer (sipproxy/sip) with mypyc (setup.py), in place:
# gcc and the Python headers are installed for it when run as root and missing.
# MSP_PURE_PYTHON=1 asks for the pure Python build instead (docs/sipproxy.md "Compiled message
# layer").  It is redone when the build asked for changes, when setup.cfg, setup.py or
# pyproject.toml change, and -- compiled -- when a module of sipproxy/sip is newer than the
# build (the extension modules would otherwise run the old code).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MSP_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "msp: Python 3.11 or newer is needed (found: $("$PY" --version 2>&1))" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            "$PY" -m venv "$VENV"
        else
            echo "msp: cannot create a virtualenv; install python3-venv" >&2
            exit 1
        fi
    fi
fi
if [ -n "${MSP_PURE_PYTHON:-}" ] && [ "${MSP_PURE_PYTHON}" != 0 ]; then
    MSP_BUILD=pure
else
    MSP_BUILD=compiled
fi
export MSP_BUILD
# what the compiled build needs: the C compiler Python was built with, and Python.h
if [ "$MSP_BUILD" = compiled ]; then
    need=()
    cc="$("$VENV/bin/python" -c 'import sysconfig; print((sysconfig.get_config_var("CC") or "cc").split()[0])')"
    command -v "$cc" >/dev/null || need+=(gcc)
    "$VENV/bin/python" -c 'import os, sys, sysconfig
sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || need+=(python3-dev)
    if [ ${#need[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "msp: installing ${need[*]} (to compile the SIP message layer)" >&2
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
        else
            echo "msp: not root; without ${need[*]} the SIP message layer stays pure Python" >&2
        fi
    fi
fi
# 0 (true) when the install recorded in stamp file $1 must be redone
_msp_stale() {
    [ -f "$1" ] && [ "$(cat "$1")" = "$MSP_BUILD" ] || return 0
    local f lib
    for f in setup.cfg setup.py pyproject.toml; do
        if [ "$ROOT/$f" -nt "$1" ]; then return 0; fi
    done
    if [ "$MSP_BUILD" = compiled ]; then
        # (no shared library: the install could not compile -- the next one would not either)
        for lib in "$ROOT"/sipproxy_sip__mypyc.*; do
            if [ -f "$lib" ] && [ -n "$(find "$ROOT/sipproxy/sip" -name '*.py' -newer "$lib" -print -quit)" ]; then
                return 0
            fi
        done
    fi
    return 1
}
STAMP="$VENV/.msp-installed$1"
FULL="$VENV/.msp-installed[test]"  # an install with the test extras covers a plain one
if ! _msp_stale "$FULL"; then
    :
elif _msp_stale "$STAMP"; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT$1"
    rm -f "$VENV"/.msp-installed*  # (the other one's build may be gone: it is stale now)
    echo "$MSP_BUILD" > "$STAMP"
fi
