"""Real Alertmanager and Prometheus servers (Debian's packages) on free loopback ports.

In CI (``CI=true``) a missing binary fails the test; elsewhere it skips it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest

from monitor.broker import free_port

__all__ = ["Alertmanager", "Prometheus", "get_json", "require_binary", "wait_until"]


def require_binary(*names: str, packages: str = "prometheus, prometheus-alertmanager") -> str:
    """The first of ``names`` on PATH; fails in CI and skips elsewhere when none is.

    ``packages`` names the Debian packages that install them, for the message.
    """
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    missing(f"{' or '.join(names)} not installed (Debian packages {packages})")


def missing(message: str) -> NoReturn:
    """What this machine lacks for a test: a failure in CI (CI=true), a skip elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, interval: float = 0.1) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{log.read_text()[-3000:]}")


class _Server:
    def __init__(self, workdir: Path, binary: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.binary = binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def _args(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, *self._args()], stdout=log, stderr=subprocess.STDOUT
            )
        wait_ready(f"{self.url}/-/ready", self._proc, self.log)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> _Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Alertmanager(_Server):
    """``prometheus-alertmanager`` with one no-op receiver (or ``config``), no clustering,
    state in ``workdir``."""

    def __init__(self, workdir: Path, config: str | None = None) -> None:
        super().__init__(workdir, require_binary("prometheus-alertmanager", "alertmanager"))
        self.config = workdir / "alertmanager.yml"
        self.config.write_text(
            config
            or "route:\n"
            "  receiver: 'null'\n"
            "  group_by: ['alertname', 'model', 'version']\n"
            "  group_wait: 1s\n"
            "  group_interval: 1s\n"
            "receivers:\n"
            "  - name: 'null'\n"
        )

    def _args(self) -> list[str]:
        return [
            f"--config.file={self.config}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
        ]

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds, from its own v2 API."""
        result: list[dict[str, Any]] = get_json(f"{self.url}/api/v2/alerts")
        return result


class Prometheus(_Server):
    """``prometheus`` scraping ``targets`` every second, with ``rule_files`` loaded and its
    alerts sent to ``alertmanagers`` (``host:port``)."""

    def __init__(
        self,
        workdir: Path,
        targets: list[str],
        rule_files: list[Path],
        alertmanagers: list[str] | None = None,
    ) -> None:
        super().__init__(workdir, require_binary("prometheus"))
        self.config = workdir / "prometheus.yml"
        rules = "".join(f"  - {p}\n" for p in rule_files)
        alerting = (
            "alerting:\n  alertmanagers:\n    - static_configs:\n"
            f"        - targets: {json.dumps(alertmanagers)}\n"
        )
        self.config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  evaluation_interval: 1s\n"
            + (f"rule_files:\n{rules}" if rule_files else "")
            + (alerting if alertmanagers else "")
            + "scrape_configs:\n"
            "  - job_name: shiftwatch\n"
            f"    static_configs:\n      - targets: {json.dumps(targets)}\n"
        )

    def _args(self) -> list[str]:
        return [
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query through the HTTP API; the result vector."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        body = get_json(url)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result
