"""The service's own HTTP app: only the documented endpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from monitor.http import HttpServer
from tests.conftest import http_request


class _Ready:
    """A switchable readiness function."""

    def __init__(self) -> None:
        self.value: tuple[bool, str] | Exception = (False, "not consuming")

    def __call__(self) -> tuple[bool, str]:
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


@pytest.fixture
def server() -> Iterator[tuple[HttpServer, _Ready]]:
    """A server on a free loopback port with one counter registered."""
    registry = CollectorRegistry()
    Counter("shiftwatch_test_total", "A counter for the test.", registry=registry).inc(3)
    ready = _Ready()
    srv = HttpServer(registry, ready, "127.0.0.1", 0).start()
    yield srv, ready
    srv.stop()


def _request(srv: HttpServer, path: str, method: str = "GET") -> tuple[int, str, str]:
    status, headers, body = http_request(f"http://127.0.0.1:{srv.port}{path}", method)
    return status, headers["Content-Type"], body


def test_metrics_served_in_prometheus_text_format(server: tuple[HttpServer, _Ready]) -> None:
    """/metrics returns the registry in the text exposition format."""
    status, ctype, body = _request(server[0], "/metrics")
    assert status == 200
    assert ctype.startswith("text/plain")
    assert "shiftwatch_test_total 3.0" in body


def test_livez_is_always_ok(server: tuple[HttpServer, _Ready]) -> None:
    """/livez answers 200 whether or not the service is ready."""
    status, _, body = _request(server[0], "/livez")
    assert status == 200 and json.loads(body)["status"] == "ok"


def test_readyz_follows_readiness(server: tuple[HttpServer, _Ready]) -> None:
    """/readyz is 503 with the reason until ready, then 200."""
    srv, ready = server
    status, _, body = _request(srv, "/readyz")
    assert status == 503 and json.loads(body)["reason"] == "not consuming"
    ready.value = (True, "consuming")
    assert _request(srv, "/readyz")[0] == 200


def test_readyz_answers_even_when_the_check_fails(server: tuple[HttpServer, _Ready]) -> None:
    """A readiness function that raises gives 503 naming the error, not a dropped connection."""
    srv, ready = server
    ready.value = RuntimeError("boom")
    status, _, body = _request(srv, "/readyz")
    assert status == 503 and "RuntimeError" in json.loads(body)["reason"]


@pytest.mark.parametrize("path", ["/", "/metrics/extra", "/verdictx", "/admin"])
def test_unknown_paths_are_404(server: tuple[HttpServer, _Ready], path: str) -> None:
    """Every undocumented path answers 404 (unlike prometheus-client's server)."""
    status, _, body = _request(server[0], path)
    assert status == 404 and "/metrics" in json.loads(body)["endpoints"]


def test_writes_are_405(server: tuple[HttpServer, _Ready]) -> None:
    """POST is not allowed on any endpoint."""
    assert _request(server[0], "/metrics", method="POST")[0] == 405
