# Sourced by scripts/run and scripts/test: make .venv with the project installed (editable).
# $1: pip extras, e.g. "[test]" or "".
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
STAMP="$VENV/.msp-installed$1"
FULL="$VENV/.msp-installed[test]"  # an install with the test extras covers a plain one
if [ -f "$FULL" ] && [ ! "$ROOT/setup.cfg" -nt "$FULL" ]; then
    :
elif [ ! -f "$STAMP" ] || [ "$ROOT/setup.cfg" -nt "$STAMP" ]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT$1"
    touch "$STAMP"
fi
