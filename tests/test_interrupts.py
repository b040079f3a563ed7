"""A Ctrl-C that Python swallows (it landed in a callback whose exceptions are only printed) is not lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import isolated_env

SWALLOWED = """
import os, signal
from agentctl import interrupts

interrupts.install()

class Collected:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives while Python runs a finalizer

Collected()
print("carried on", flush=True)
interrupts.check()
print("not interrupted", flush=True)
"""


def test_a_ctrl_c_swallowed_by_a_finalizer_is_raised_at_the_next_check(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SWALLOWED], env=isolated_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.splitlines() == ["carried on"]  # Python swallowed the first raise, as it does
    assert "Exception ignored in" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "KeyboardInterrupt"
