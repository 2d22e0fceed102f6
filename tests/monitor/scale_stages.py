"""The scale tier's stages as processes: ``shiftwatch run --engine quix --stage ...``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from monitor.broker import EmbeddedBroker, free_port
from tests.conftest import DEMO_POLICY, FAST_GROUP, read_jsonl
from tests.servers import wait_ready

SECRET = "scale-tier-test-secret"


class Stage:
    """One stage process with its own state directory, log and HTTP port."""

    def __init__(
        self,
        broker: EmbeddedBroker,
        stage: str,
        topic: str,
        group: str,
        workdir: Path,
        *,
        policy: Path = DEMO_POLICY,
        alerts: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.stage = stage
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        fast = {f"SHIFTWATCH_KAFKA__{k.upper()}": str(v) for k, v in FAST_GROUP.items()}
        self.env = {
            **os.environ,
            **fast,
            "SHIFTWATCH_STATE__SECRET": SECRET,
            "SHIFTWATCH_SCALE__COMMIT_SECONDS": "1",
            "SHIFTWATCH_SCALE__PARTIALS_TOPIC": f"{topic}.partials",
            **(extra_env or {}),
        }
        self.cmd = [
            sys.executable, "-m", "monitor.cli", "run",
            "--engine", "quix",
            "--stage", stage,
            "--state-dir", str(workdir / "state"),
            "--policy", str(policy),
            "--bootstrap-servers", broker.bootstrap_servers,
            "--topics", topic,
            "--group-id", group,
            "--dead-letter-topic", f"{topic}.dlq",
            "--http-host", "127.0.0.1",
            "--http-port", str(self.port),
            "--log-format", "json",
        ]  # fmt: skip
        if alerts is not None:
            self.cmd += ["--alerts-out", str(alerts)]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "log.txt"

    def start(self) -> Stage:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=log, stderr=log)
        wait_ready(f"http://127.0.0.1:{self.port}/livez", self.proc, self.log)
        return self

    def kill(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
            body = resp.read()
        return json.loads(body) if path.startswith("/verdict") else body.decode()

    def verdict(self, model: str = "fraud-scorer", version: str = "v7-int8") -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/verdict?model={model}&version={version}")
        return result


def alerts_of(path: Path) -> list[dict[str, Any]]:
    return read_jsonl(path) if path.exists() else []
