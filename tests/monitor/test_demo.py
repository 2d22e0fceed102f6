"""`shiftwatch demo` from the command line, as a new user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import Alertmanager

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


def test_demo_shows_a_rollback_alert_and_leaves_nothing_running(tmp_path: Path) -> None:
    """The demo's rollback alert reaches a real Alertmanager; the verdict is fail; all stops."""
    am = Alertmanager(tmp_path / "am")
    am.start()
    try:
        proc = _demo(am.url)
        alerts = am.alerts()
    finally:
        am.stop()
    rollbacks = [a for a in alerts if a["labels"]["alertname"] == "ShiftwatchRollback"]
    assert {a["labels"]["check"] for a in rollbacks} >= {"escalations"}
    # One alert per (check, segment): the overall stream's has no segment label.
    overall = [a for a in rollbacks if "segment" not in a["labels"]]
    (escalations,) = [a for a in overall if a["labels"]["check"] == "escalations"]
    assert escalations["labels"]["model"] == "fraud-scorer"
    assert escalations["labels"]["version"] == "v7-int8"
    assert "roll back to v7-fp32" in escalations["annotations"]["summary"]
    assert "verdict for fraud-scorer v7-int8: fail (roll back to v7-fp32): escalations" in (
        proc.stdout
    )
    _check_output(proc)


def _demo(alertmanager_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "demo",
            "--duration",
            "60",
            "--alertmanager-url",
            alertmanager_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _check_output(proc: subprocess.CompletedProcess[str]) -> None:
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
