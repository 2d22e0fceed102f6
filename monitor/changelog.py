"""A compacted Kafka changelog of per-partition checkpoints, signed, as Kafka Streams keeps state.

Each event partition's checkpoint (its pipeline state and the next offset) is
produced to the changelog topic keyed ``<group>/<topic>:<partition>``; the
topic is compacted, so the latest checkpoint per partition is kept. When a
replica is assigned a partition it reads the changelog and restores the
latest checkpoint for it: state moves with its partition on a rebalance.

Checkpoints are pickles, so each is signed with HMAC-SHA256 under a secret
shared by the replicas (``state.changelog_secret``); one whose signature does
not verify is ignored (logged), never unpickled: anyone able to write to the
topic cannot make a replica run code.

A checkpoint is larger than Kafka's default record limit (1 MB) as soon as
the dedupe and join tables fill, so it is compressed and cut into chunks of
at most 512 KiB, each under its own key ``<key>@<snapshot>#<i>``; then the
record under ``<key>`` itself names the snapshot and its chunk count, and the
previous snapshot's chunks are deleted (tombstones). A crash part-way leaves
the previous header, whose chunks are all still there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import time
import uuid
import zlib
from typing import Any

import structlog
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from monitor.config import KafkaSettings
from monitor.state import Checkpoint

__all__ = ["KafkaChangelog", "open_checkpoint", "seal_checkpoint"]

log = structlog.get_logger("shiftwatch.changelog")

_MAGIC = b"SWCK1"
_SIG = 32
_CHUNK = 512 * 1024


def seal_checkpoint(checkpoint: Checkpoint, secret: bytes) -> bytes:
    """The signed bytes of a checkpoint: magic, HMAC-SHA256 of the payload, payload."""
    payload = pickle.dumps(
        {
            "policy": checkpoint.policy,
            "state": checkpoint.state,
            "positions": checkpoint.positions,
            "saved_at": checkpoint.saved_at,
            "format": checkpoint.format,
        },
        protocol=pickle.HIGHEST_PROTOCOL,
    )
    return _MAGIC + hmac.new(secret, payload, hashlib.sha256).digest() + payload


def open_checkpoint(value: bytes, secret: bytes) -> Checkpoint | None:
    """The checkpoint in ``value``, or None if it is not one or its signature fails."""
    if not value.startswith(_MAGIC) or len(value) < len(_MAGIC) + _SIG:
        return None
    sig = value[len(_MAGIC) : len(_MAGIC) + _SIG]
    payload = value[len(_MAGIC) + _SIG :]
    if not hmac.compare_digest(sig, hmac.new(secret, payload, hashlib.sha256).digest()):
        return None
    data: dict[str, Any] = pickle.loads(payload)  # signed by a replica holding the secret
    return Checkpoint(
        policy=data["policy"],
        state=data["state"],
        positions=data["positions"],
        saved_at=data["saved_at"],
        format=data["format"],
    )


class KafkaChangelog:
    """Reads and writes per-partition checkpoints on a compacted topic."""

    def __init__(self, settings: KafkaSettings, topic: str, secret: bytes) -> None:
        if not secret:
            raise ValueError("the changelog needs a signing secret shared by the replicas")
        self.settings = settings
        self.topic = topic
        self._secret = secret
        self._producer = KafkaProducer(
            acks="all", linger_ms=0, retries=10, **settings.client_config()
        )
        # The snapshot and chunk count this replica last wrote per key (to delete them).
        self._written: dict[str, tuple[str, int]] = {}

    def save(self, key: str, checkpoint: Checkpoint) -> None:
        """Produce the checkpoint's chunks, then its header; wait for the acknowledgements."""
        checkpoint.saved_at = time.time()
        blob = zlib.compress(seal_checkpoint(checkpoint, self._secret), 1)
        snapshot = uuid.uuid4().hex
        chunks = [blob[i : i + _CHUNK] for i in range(0, len(blob), _CHUNK)] or [b""]
        futures = [
            self._producer.send(self.topic, key=f"{key}@{snapshot}#{i}".encode(), value=chunk)
            for i, chunk in enumerate(chunks)
        ]
        for future in futures:
            future.get(timeout=30)
        header = json.dumps({"snapshot": snapshot, "chunks": len(chunks)}).encode()
        self._producer.send(self.topic, key=key.encode(), value=header).get(timeout=30)
        previous = self._written.get(key)
        if previous is not None:
            old, n = previous
            for i in range(n):
                self._producer.send(self.topic, key=f"{key}@{old}#{i}".encode(), value=None)
            self._producer.flush(timeout=30)
        self._written[key] = (snapshot, len(chunks))

    def load(self, keys: list[str], timeout: float = 30.0) -> dict[str, Checkpoint]:
        """The latest valid checkpoint of each key present, read from the topic's start."""
        wanted = set(keys)
        found: dict[str, bytes | None] = {}
        consumer = KafkaConsumer(
            enable_auto_commit=False, group_id=None, **self.settings.client_config()
        )
        try:
            deadline = time.monotonic() + timeout
            parts = consumer.partitions_for_topic(self.topic)
            while not parts and time.monotonic() < deadline:
                time.sleep(0.2)
                parts = consumer.partitions_for_topic(self.topic)
            if not parts:
                raise KafkaError(f"changelog topic {self.topic} not found")
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            idle = 0
            while time.monotonic() < deadline and idle < 10:
                records = consumer.poll(timeout_ms=300)
                idle = 0 if records else idle + 1
                for batch in records.values():
                    for record in batch:
                        name = (record.key or b"").decode("utf-8", "replace")
                        if name.partition("@")[0] in wanted:
                            found[name] = record.value
                if all(
                    (high := consumer.highwater(tp)) is not None and consumer.position(tp) >= high
                    for tp in tps
                ):
                    break
        finally:
            consumer.close()
        out: dict[str, Checkpoint] = {}
        for name in keys:
            checkpoint = self._assemble(name, found)
            if checkpoint is not None:
                out[name] = checkpoint
        return out

    def _assemble(self, key: str, found: dict[str, bytes | None]) -> Checkpoint | None:
        header = found.get(key)
        if header is None:
            return None
        try:
            meta = json.loads(header)
            parts = [found[f"{key}@{meta['snapshot']}#{i}"] for i in range(int(meta["chunks"]))]
            blob = zlib.decompress(b"".join(p or b"" for p in parts))
        except (ValueError, KeyError, TypeError, zlib.error) as exc:
            log.error("changelog entry not restored: incomplete", key=key, error=str(exc)[:200])
            return None
        checkpoint = open_checkpoint(blob, self._secret)
        if checkpoint is None:
            log.error("changelog entry not restored: bad signature or format", key=key)
            return None
        self._written[key] = (meta["snapshot"], int(meta["chunks"]))
        return checkpoint

    def close(self) -> None:
        self._producer.close(timeout=5)
