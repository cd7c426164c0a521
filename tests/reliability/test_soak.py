"""The soak run (scripts/soak) as a test: slow, so CI skips it (run with ``-m slow``).

Two minutes of the whole platform under a small mixed load; it passes when no request
failed, RTP arrived, no service logged an error, and RSS, descriptors and database
connections did not rise from the first minute to the last.  The long runs are recorded in
docs/reliability.md.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT


@pytest.mark.slow
def test_soak_two_minutes():
    env = dict(os.environ, VIRTUAL_ENV=os.environ.get("VIRTUAL_ENV", sys.prefix))
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "soak"), "--minutes", "2", "--warmup", "0",
                          "--phones", "500", "--calls", "10", "--hold", "10"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    assert "soak: passed" in out.stdout
