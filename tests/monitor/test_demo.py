"""`shiftwatch demo` from the command line, as a new user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.kafka


def _brokers_listening_on(address: str) -> list[int]:
    """Pids of tansu brokers started with this listener address."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"tansu" in cmdline and f"tcp://{address}".encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def test_demo_shows_a_rollback_alert_and_leaves_nothing_running() -> None:
    """The demo prints a rollback alert within its run, exits 0 and stops its broker."""
    proc = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "demo", "--duration", "60"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "ROLLBACK ALERT" in out
    assert "check 'escalations'" in out
    seconds = int(out.split("ROLLBACK ALERT after ", 1)[1].split("s", 1)[0])
    assert seconds <= 60
    assert "dead-lettered" in out and "nothing left running" in out
    found = re.search(r"^broker (127\.0\.0\.1:\d+);", out, re.MULTILINE)
    assert found is not None
    address = found.group(1)
    assert _brokers_listening_on(address) == []
