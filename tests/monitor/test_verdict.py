"""The verdict endpoint and Flagger's webhooks, on a monitor driven into each state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from monitor.http import HttpServer
from monitor.pipeline import Pipeline
from monitor.verdict import VerdictBoard
from tests.conftest import DENY, http_request
from tests.conftest import one_model_pipeline as _monitor
from tests.conftest import run_seconds as _run

PAGE = {
    "name": "allow-rate",
    "metric": "decision_rate",
    "where": {"decision": "allow"},
    "tolerance": {"max_decrease": 0.02},
    "action": "page",
}


@pytest.fixture
def board() -> Iterator[tuple[VerdictBoard, HttpServer]]:
    verdicts = VerdictBoard()
    srv = HttpServer(CollectorRegistry(), lambda: (True, "ok"), verdicts=verdicts).start()
    yield verdicts, srv
    srv.stop()


def _call(
    srv: HttpServer, path: str, payload: dict[str, Any] | bytes | None = None
) -> tuple[int, dict[str, Any]]:
    data = payload if isinstance(payload, bytes) or payload is None else json.dumps(payload)
    status, _, body = http_request(
        f"http://127.0.0.1:{srv.port}{path}",
        "POST" if payload is not None else "GET",
        data.encode() if isinstance(data, str) else data,
    )
    return status, json.loads(body)


def _publish(verdicts: VerdictBoard, pipeline: Pipeline) -> None:
    """Publish candidate v2's verdict, as the pipeline does after each batch."""
    model = pipeline.models["m"]
    verdicts.publish(model.policy, model.statuses(), {"v2"})


def _flagger(srv: HttpServer, hook: str) -> int:
    payload = {
        "name": "fraud-scorer",
        "namespace": "risk",
        "phase": "Progressing",
        "metadata": {"model": "m", "version": "v2"},
    }
    return _call(srv, f"/flagger/{hook}", payload)[0]


def test_no_data_is_inconclusive_and_never_rolls_back(
    board: tuple[VerdictBoard, HttpServer],
) -> None:
    verdicts, srv = board
    _publish(verdicts, _monitor(DENY))
    status, body = _call(srv, "/verdict?model=m&version=v2")
    assert status == 200
    assert body["verdict"] == "inconclusive"
    assert body["reasons"] == [
        {
            "check": "deny",
            "metric": "decision_rate",
            "action": "rollback",
            "segment": "",
            "state": "inconclusive",
            "reason": "no candidate data yet",
        }
    ]
    assert (_flagger(srv, "rollback"), _flagger(srv, "promote")) == (412, 412)


def test_identical_candidate_passes(board: tuple[VerdictBoard, HttpServer]) -> None:
    verdicts, srv = board
    monitor = _monitor(DENY, PAGE)
    _run(monitor, [(120, 0.05, 0.0)], np.random.default_rng(3))
    _publish(verdicts, monitor)
    status, body = _call(srv, "/verdict?model=m&version=v2")
    assert status == 200
    assert body["verdict"] == "pass", body["reasons"]
    assert body["reasons"] == []
    assert {c["check"] for c in body["checks"]} == {"deny", "allow-rate"}
    assert all(c["state"] == "ok" for c in body["checks"])
    assert (_flagger(srv, "rollback"), _flagger(srv, "promote")) == (412, 200)


def test_rollback_breach_fails_with_its_evidence(board: tuple[VerdictBoard, HttpServer]) -> None:
    verdicts, srv = board
    monitor = _monitor(DENY)
    _run(monitor, [(300, 0.15, 0.0)], np.random.default_rng(4))
    _publish(verdicts, monitor)
    status, body = _call(srv, "/verdict?model=m&version=v2")
    assert status == 200 and body["verdict"] == "fail"
    assert body["rollback_to"] == "v1"
    (reason,) = body["reasons"]
    assert reason["check"] == "deny" and reason["state"] == "breach"
    assert reason["observed"] > reason["reference"] + 0.02
    assert reason["statistic"] > reason["threshold"]
    assert reason["alert_id"]
    assert (_flagger(srv, "rollback"), _flagger(srv, "promote")) == (200, 412)


def test_page_only_breach_is_for_a_person(board: tuple[VerdictBoard, HttpServer]) -> None:
    """A breached check whose action is page holds the rollout (inconclusive), no rollback."""
    verdicts, srv = board
    monitor = _monitor(PAGE)
    _run(monitor, [(300, 0.30, 0.0)], np.random.default_rng(5))  # allow share 95% -> 70%
    _publish(verdicts, monitor)
    body = _call(srv, "/verdict?model=m&version=v2")[1]
    assert body["verdict"] == "inconclusive"
    assert [r["check"] for r in body["reasons"]] == ["allow-rate"]
    assert (_flagger(srv, "rollback"), _flagger(srv, "promote")) == (412, 412)


def test_bad_requests_are_explained(board: tuple[VerdictBoard, HttpServer]) -> None:
    verdicts, srv = board
    _publish(verdicts, _monitor(DENY))
    status, body = _call(srv, "/verdict?model=m")
    assert status == 400 and "model and version" in body["error"]
    status, body = _call(srv, "/verdict?model=m&version=v9")
    assert status == 404 and body["known"] == ["m@v2"]
    status, body = _call(srv, "/flagger/rollback", b"not json")
    assert status == 400 and "Flagger" in body["error"]
    status, _ = _call(srv, "/flagger/other", {"metadata": {}})
    assert status == 405
