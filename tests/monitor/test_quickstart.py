"""docs/quickstart.md, as a user runs it: `shiftwatch broker`, `simulate`, `produce`, and
`shiftwatch run` with the committed deploy/local/shiftwatch.yaml."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.broker import free_port
from monitor.config import load_settings
from monitor.policy import load_policy
from tests.conftest import REPO, http_request, metric_sum
from tests.servers import wait_until

CONFIG = REPO / "deploy" / "local" / "shiftwatch.yaml"
QUICKSTART = REPO / "docs" / "quickstart.md"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "monitor.cli", *args]


def test_the_sample_config_is_valid_from_the_repository_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(REPO)
    for name in list(os.environ):
        if name.startswith("SHIFTWATCH_"):
            monkeypatch.delenv(name)
    settings = load_settings(CONFIG)
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka.topics == ["shiftwatch.events"]
    assert load_policy(settings.policy).models[0].name == "fraud-scorer"


def test_the_quickstart_names_the_commands_it_runs() -> None:
    text = QUICKSTART.read_text()
    for command in (
        "shiftwatch broker",
        "shiftwatch simulate --out events.jsonl",
        "shiftwatch policy check monitor/demo/policy.yaml --events events.jsonl",
        "shiftwatch run --config deploy/local/shiftwatch.yaml",
        "shiftwatch produce events.jsonl",
        "/verdict?model=fraud-scorer&version=v7-int8",
    ):
        assert command in text, command


def test_a_local_run_with_the_sample_config_finds_the_demos_rollback(tmp_path: Path) -> None:
    port, http_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")}
    broker = subprocess.Popen(
        cli("broker", "--port", str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    run = None
    try:
        assert broker.stdout is not None
        assert broker.stdout.readline().startswith(f"broker on 127.0.0.1:{port}; topics: ")
        events = tmp_path / "events.jsonl"
        done = subprocess.run(
            cli("simulate", "--out", str(events), "--requests", "20000"),
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        assert done.stdout.startswith("wrote ")
        run_env = env | {
            "SHIFTWATCH_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
            "SHIFTWATCH_HTTP_PORT": str(http_port),
            "SHIFTWATCH_ALERTS_OUT": str(tmp_path / "alerts.jsonl"),
            "SHIFTWATCH_STATE__PATH": str(tmp_path / "state.sqlite3"),
            "SHIFTWATCH_LOG_FORMAT": "json",
        }
        run = subprocess.Popen(
            cli("run", "--config", str(CONFIG.relative_to(REPO))),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=run_env,
        )
        done = subprocess.run(
            cli("produce", str(events), "--bootstrap-servers", f"127.0.0.1:{port}"),
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        produced = int(done.stdout.split()[1].replace(",", ""))
        url = f"http://127.0.0.1:{http_port}/verdict?model=fraud-scorer&version=v7-int8"

        def failed() -> bool:
            try:
                status, _, body = http_request(url)
            except OSError:
                return False
            return status == 200 and json.loads(body)["verdict"] == "fail"

        wait_until(failed, timeout=90)
        metrics = f"http://127.0.0.1:{http_port}/metrics"
        wait_until(
            lambda: (
                metric_sum(http_request(metrics)[2], "shiftwatch_events_consumed_total") >= produced
            ),
            timeout=60,
        )
        verdict = json.loads(http_request(url)[2])
        assert [r["check"] for r in verdict["reasons"]] == ["escalations"]
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=30)
        assert run.returncode == 0 and "Traceback" not in err
        stopped = [json.loads(line) for line in err.splitlines() if '"stopped"' in line]
        assert stopped and stopped[-1]["consumed"] == produced
        alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
        assert [a["check"] for a in alerts] == ["escalations"]
    finally:
        for proc in (run, broker):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=15)
