"""A new user's first hour: every expected failure is one clear line, never a traceback.

Each case runs the real ``shiftwatch`` command in a subprocess, as a user would,
and asserts on what reaches the terminal: the field at fault and its fix, an
exit status, and no ``Traceback``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.broker import free_port
from tests.conftest import DEMO_POLICY, http_request
from tests.servers import wait_until

Raw = dict[str, Any]


def shiftwatch(
    *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


def demo_policy() -> Raw:
    raw: Raw = yaml.safe_load(DEMO_POLICY.read_text())
    return raw


def check(raw: Raw, name: str) -> Raw:
    found: Raw = next(c for c in raw["models"][0]["checks"] if c["name"] == name)
    return found


def in_check(name: str, key: str, value: Any) -> Callable[[Raw], None]:
    return lambda raw: check(raw, name).__setitem__(key, value)


def in_model(key: str, value: Any) -> Callable[[Raw], None]:
    return lambda raw: raw["models"][0].__setitem__(key, value)


def drop_model(key: str) -> Callable[[Raw], None]:
    return lambda raw: raw["models"][0].pop(key)


M = "models[fraud-scorer]"

#: (mutation of the demo policy, the field reported, words of the fix).
POLICIES: list[Any] = [
    pytest.param(
        in_check("escalations", "action", "rolback"),
        f"{M}.checks[escalations].action",
        "did you mean 'rollback'",
        id="action-typo",
    ),
    pytest.param(
        in_check("escalations", "action", "page-me"),
        f"{M}.checks[escalations].action",
        "use one of the values listed",
        id="action-unknown",
    ),
    pytest.param(
        in_check("new-privileged-tool", "where", {"privileged": "yes"}),
        f"{M}.checks[new-privileged-tool].where.privileged",
        "write true or false",
        id="where-string-for-bool",
    ),
    pytest.param(
        in_check("deny-rate", "where", {"decision": 1}),
        f"{M}.checks[deny-rate].where.decision",
        "",
        id="where-number-for-string",
    ),
    pytest.param(
        in_check("deny-rate", "where", {"decisoin": "deny"}),
        f"{M}.checks[deny-rate].where.decisoin",
        "did you mean 'decision'",
        id="where-key-typo",
    ),
    pytest.param(
        in_check("deny-rate", "metric", "decision_rates"),
        f"{M}.checks[deny-rate].metric",
        "did you mean 'decision_rate'",
        id="metric-typo",
    ),
    pytest.param(
        in_check("deny-rate", "tolerance", {"max_relative_chnage": 0.5}),
        f"{M}.checks[deny-rate].tolerance.max_relative_chnage",
        "did you mean 'max_relative_change'",
        id="tolerance-key-typo",
    ),
    pytest.param(
        in_check("deny-rate", "tolerance", {"max_distance": 0.1}),
        f"{M}.checks[deny-rate].tolerance",
        "max_relative_change: 0.2",
        id="rate-with-distance",
    ),
    pytest.param(
        in_check("score-drift", "tolerance", {}),
        f"{M}.checks[score-drift].tolerance",
        "max_distance: 0.1",
        id="distance-without-tolerance",
    ),
    pytest.param(
        in_check("score-drift", "tolerance", {"max_distance": 1.5}),
        f"{M}.checks[score-drift].tolerance.max_distance",
        "lower the value",
        id="distance-above-1",
    ),
    pytest.param(
        in_check("score-drift", "distance", "hellinger"),
        f"{M}.checks[score-drift].distance",
        "use one of the values listed",
        id="distance-unknown",
    ),
    pytest.param(
        in_check("deny-rate", "distance", "ks"),
        f"{M}.checks[deny-rate].distance",
        "remove it",
        id="distance-on-rate",
    ),
    pytest.param(
        in_check("new-privileged-tool", "tolerance", {"max_increase": 0.1}),
        f"{M}.checks[new-privileged-tool].tolerance",
        "remove the tolerance",
        id="novel-with-tolerance",
    ),
    pytest.param(
        in_check("deny-rate", "severity", "urgent"),
        f"{M}.checks[deny-rate].severity",
        "use one of the values listed",
        id="severity-unknown",
    ),
    pytest.param(
        in_check("deny-rate", "min_baseline_calls", 10),
        f"{M}.checks[deny-rate].min_baseline_calls",
        "remove it",
        id="min-calls-on-rate",
    ),
    pytest.param(
        in_check("deny-rate", "name", "escalations"),
        f"{M}.checks",
        "give each check its own name",
        id="duplicate-check",
    ),
    pytest.param(
        in_model("candidates", ["v7-int8", "v7-fp32"]),
        f"{M}.candidates",
        "remove it from candidates",
        id="baseline-as-candidate",
    ),
    pytest.param(
        drop_model("negative_decisions"),
        M,
        "negative_decisions: [allow]",
        id="fn-without-negatives",
    ),
    pytest.param(drop_model("owner"), f"{M}.owner", "add this field", id="owner-missing"),
    pytest.param(in_model("owner", "fraud team"), f"{M}.owner", "", id="owner-with-space"),
    pytest.param(
        in_model("false_alarm", {"arl0": 10}),
        f"{M}.false_alarm.arl0",
        "raise the value",
        id="arl0-too-small",
    ),
    pytest.param(
        in_model("action_window_seconds", 0),
        f"{M}.action_window_seconds",
        "use a positive number",
        id="window-zero",
    ),
    pytest.param(
        in_model("segmnts", ["lang"]),
        f"{M}.segmnts",
        "did you mean 'segments'",
        id="model-key-typo",
    ),
    pytest.param(in_model("checks", []), f"{M}.checks", "add at least one entry", id="no-checks"),
    pytest.param(
        lambda raw: raw.__setitem__("version", 2),
        "version",
        "use one of the values listed",
        id="version-2",
    ),
    pytest.param(
        lambda raw: raw.__setitem__("model", []),
        "model",
        "did you mean 'models'",
        id="top-key-typo",
    ),
]


@pytest.mark.parametrize(("mutate", "field", "fix"), POLICIES)
def test_a_malformed_policy_is_one_line_naming_the_field_and_the_fix(
    tmp_path: Path, mutate: Callable[[Raw], None], field: str, fix: str
) -> None:
    raw = demo_policy()
    mutate(raw)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = shiftwatch("policy", "check", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{path}: ") and "problem(s)" in lines[0]
    ours = [line for line in lines[1:] if line.startswith(f"  {field} (line ")]
    assert ours, result.stderr
    assert "(fix: " in ours[0] and ours[0].endswith(")") and fix in ours[0]


#: Files that are not a policy at all.
FILES = [
    pytest.param("", "the policy is empty", id="empty"),
    pytest.param("version: 1\nmodels: [\n", "not valid YAML", id="bad-yaml"),
    pytest.param("- a\n- b\n", "a policy is a mapping", id="a-list"),
]


@pytest.mark.parametrize(("text", "message"), FILES)
def test_a_file_that_is_no_policy_says_what_is_wrong(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    result = shiftwatch("policy", "check", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [head, problem] = result.stderr.splitlines()
    assert head == f"{path}: 1 problem(s)"
    assert message in problem and "(fix: " in problem and "<unicode string>" not in problem


#: (a config file's content, the field reported, words of the fix) for `shiftwatch run`.
CONFIGS = [
    pytest.param(
        {"kafka": {"bootstrap_servrs": "x:9092"}},
        "kafka.bootstrap_servrs",
        "did you mean 'bootstrap_servers'",
        id="kafka-key-typo",
    ),
    pytest.param({"http_port": "abc"}, "http_port", "write a whole number", id="port-not-a-number"),
    pytest.param({"http_port": 70000}, "http_port", "at or below the limit", id="port-too-large"),
    pytest.param({"log_level": "warn"}, "log_level", "did you mean 'warning'", id="log-level-typo"),
    pytest.param(
        {"limits": {"segment_cap": 0}}, "limits.segment_cap", "fix: ", id="segment-cap-zero"
    ),
    pytest.param(
        {"state": {"mismatch": "ignore"}},
        "state.mismatch",
        "use one of the values listed",
        id="mismatch-unknown",
    ),
]


@pytest.mark.parametrize(("config", "field", "fix"), CONFIGS)
def test_a_malformed_config_is_one_line_naming_the_field_and_the_fix(
    tmp_path: Path, config: dict[str, Any], field: str, fix: str
) -> None:
    path = tmp_path / "shiftwatch.yaml"
    path.write_text(yaml.safe_dump({"policy": str(DEMO_POLICY), **config}))
    result = shiftwatch("run", "--config", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith(f"  {field}: ")]
    assert len(ours) == 1, result.stderr
    assert "(fix: " in ours[0] and fix in ours[0] and "correct the value" not in ours[0]


def test_a_config_without_a_policy_names_the_flag_and_the_variable() -> None:
    result = shiftwatch("run", "--bootstrap-servers", "127.0.0.1:1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "policy: Field required (fix: set `policy` in the config file, SHIFTWATCH_POLICY" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["replay", "x.jsonl", "--polcy", "p.yaml"], "--polcy (did you mean '--policy'?)"),
        (
            ["replay", "x.jsonl", "--policy", "p", "--alerts-ot", "a"],
            "did you mean '--alerts-out'?",
        ),
        (["demo", "--duraton", "5"], "--duraton (did you mean '--duration'?)"),
        (["run", "--stat", "s"], "did you mean '--state'?"),
    ],
)
def test_an_unknown_flag_gets_the_commands_usage_and_a_suggestion(
    args: list[str], expected: str
) -> None:
    result = shiftwatch(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"usage: shiftwatch {args[0]} ")
    assert expected in result.stderr


def test_state_given_a_file_says_it_wants_a_directory(tmp_path: Path) -> None:
    events, state = tmp_path / "events.jsonl", tmp_path / "state"
    events.write_text("")
    state.write_text("not a directory")
    result = shiftwatch("replay", str(events), "--policy", str(DEMO_POLICY), "--state", str(state))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "is a file, and --state takes a directory (fix: " in result.stderr
    assert "File exists" not in result.stderr


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port another process already listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.mark.parametrize("command", ["run", "demo"])
def test_a_port_in_use_is_one_line(held_port: int, command: str) -> None:
    if command == "run":
        args = [
            "run",
            "--policy",
            str(DEMO_POLICY),
            "--bootstrap-servers",
            "127.0.0.1:1",
            "--http-host",
            "127.0.0.1",
            "--http-port",
            str(held_port),
        ]
    else:
        args = ["demo", "--duration", "5", "--metrics-port", str(held_port)]
    result = shiftwatch(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "Error" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{held_port}: Address already in use (fix: " in (
        result.stderr
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_without_a_broker_run_answers_livez_says_why_not_ready_and_stops_cleanly(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """No broker on the address: /livez at once, /readyz 503 "connecting", one log line per
    retry (no kafka-python chatter), and a signal during start-up ends it with status 0."""
    port, dead = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTWATCH_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "run",
            "--policy",
            str(DEMO_POLICY),
            "--bootstrap-servers",
            f"127.0.0.1:{dead}",
            "--http-host",
            "127.0.0.1",
            "--http-port",
            str(port),
            "--log-format",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_until(lambda: _answers(port), timeout=10)
        status, _, body = http_request(f"http://127.0.0.1:{port}/readyz")
        assert status == 503
        assert json.loads(body)["reason"] == f"connecting to Kafka at 127.0.0.1:{dead}"
        status, _, _ = http_request(
            f"http://127.0.0.1:{port}/verdict?model=fraud-scorer&version=v7-int8"
        )
        assert status == 503
        time.sleep(7)  # past one bootstrap timeout (5 s): one retry line
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "Traceback" not in err
    events = [json.loads(line) for line in err.splitlines()]
    retries = [e for e in events if e["event"] == "Kafka unreachable; retrying"]
    assert 1 <= len(retries) <= 3
    assert {e["event"] for e in events} <= {
        "Kafka unreachable; retrying",
        "stop requested",
        "stopped before connecting to Kafka",
    }
    assert events[-1]["event"] == "stopped before connecting to Kafka"


def _answers(port: int) -> bool:
    try:
        return http_request(f"http://127.0.0.1:{port}/livez")[0] == 200
    except OSError:
        return False


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["replay", "{missing}", "--policy", str(DEMO_POLICY)], "No such file or directory"),
        (["replay", "{dir}", "--policy", str(DEMO_POLICY)], "Is a directory"),
        (["policy", "check", "{missing}"], "cannot read: No such file or directory"),
        (["policy", "check", "{dir}"], "cannot read: Is a directory"),
        (["run", "--config", "{missing}"], "not found"),
        (["run", "--policy", "{missing}", "--bootstrap-servers", "127.0.0.1:1"], "cannot read"),
        (["policy", "init", "--events", "{missing}"], "No such file or directory"),
    ],
)
def test_a_file_that_cannot_be_read_is_one_line(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    paths = {"missing": str(tmp_path / "nope.yaml"), "dir": str(tmp_path)}
    result = shiftwatch(*[a.format(**paths) for a in args])
    assert result.returncode in (1, 2)
    assert "Traceback" not in result.stderr
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) <= 2


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_log_line_clears_the_progress_bar_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The replay's progress bar holds the line; a log line must not run on after it."""
    import structlog

    from monitor.logging import configure_logging
    from monitor.pipeline import Ledger
    from monitor.replay import Progress

    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    try:
        configure_logging("info", "console")
        Progress(100, term).update(Ledger(consumed=5), 50, final=False)
        structlog.get_logger("t").warning("something")
        logging.getLogger("kafka.net.manager").error("Connection failed: ECONNREFUSED")
        logging.getLogger("some.library").warning("routed through structlog")
    finally:
        configure_logging("warning", "json")
    bar, log_line, library_line = term.getvalue().split("\r\x1b[K")[1:]
    assert bar.startswith("[###") and "\n" not in bar
    assert "something" in log_line and log_line.endswith("\n")
    assert "routed through structlog" in library_line and "some.library" in library_line
    assert "ECONNREFUSED" not in term.getvalue()  # kafka-python's chatter: only at debug


def test_the_demo_says_why_fewer_were_consumed_than_produced() -> None:
    from monitor.demo.run import _in_flight

    assert _in_flight(0) == ""
    assert _in_flight(262) == " (the last 262 were still unread when the demo stopped)"
