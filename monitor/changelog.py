"""A compacted Kafka changelog of per-partition checkpoints, signed, as Kafka Streams keeps state.

Each event partition's checkpoint (its pipeline state and the next offset) is
produced to the changelog topic keyed ``<group>/<topic>:<partition>``; the
topic is compacted, so the latest checkpoint per partition is kept. When a
replica is assigned a partition it reads the changelog and restores the
latest checkpoint for it: state moves with its partition on a rebalance.

Each checkpoint is sealed by :func:`monitor.envelope.seal` under the secret
shared by the replicas (``state.secret``, alias ``state.changelog_secret``):
msgpack, zlib-compressed, then signed (HMAC-SHA256), so a reader verifies the
signature before it decompresses or decodes anything; only plain data is decoded.
An entry that cannot be restored (damaged, foreign, signed with another
secret, or of another format) comes back from :meth:`KafkaChangelog.load` as
a :class:`~monitor.envelope.CheckpointError`; ``state.mismatch`` decides what
happens (:mod:`monitor.partitions`).

A checkpoint is larger than Kafka's default record limit (1 MB) as soon as
the dedupe and join tables fill, so the sealed bytes are cut into chunks of
at most 512 KiB, each under its own key ``<key>@<snapshot>#<i>``; then the
record under ``<key>`` itself names the snapshot and its chunk count, and the
previous snapshot's chunks are deleted (tombstones). A crash part-way leaves
the previous header, whose chunks are all still there.
"""

from __future__ import annotations

import json
import time
import uuid
import zlib

import structlog
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from monitor.config import KafkaSettings
from monitor.envelope import (
    LEGACY_MAGIC,
    Checkpoint,
    CheckpointError,
    legacy_format_error,
    open_sealed,
    seal,
)

__all__ = ["KafkaChangelog"]

log = structlog.get_logger("shiftwatch.changelog")

_CHUNK = 512 * 1024


def _is_legacy(blob: bytes) -> bool:
    """Whether ``blob`` is a format 1 record (a zlib stream starting ``SWCK1``); only its
    first five bytes are decompressed, nothing else is read."""
    if blob[:1] != b"\x78":  # zlib's header byte for the default window
        return False
    try:
        return zlib.decompressobj().decompress(blob, len(LEGACY_MAGIC)) == LEGACY_MAGIC
    except zlib.error:
        return False


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
        blob = seal(checkpoint, self._secret, compress=True)
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

    def load(
        self, keys: list[str], timeout: float = 30.0
    ) -> dict[str, Checkpoint | CheckpointError]:
        """The latest checkpoint of each key present, read from the topic's start; or why it
        cannot be restored (a :class:`~monitor.envelope.CheckpointError`, not raised)."""
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
        out: dict[str, Checkpoint | CheckpointError] = {}
        for name in keys:
            if found.get(name) is not None:
                try:
                    out[name] = self._assemble(name, found)
                except CheckpointError as err:
                    out[name] = err
        return out

    def _assemble(self, key: str, found: dict[str, bytes | None]) -> Checkpoint:
        header = found[key] or b""
        try:
            meta = json.loads(header)
            snapshot, chunks = str(meta["snapshot"]), int(meta["chunks"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                "foreign", f"not a shiftwatch changelog header ({str(exc)[:100]})"
            ) from exc
        # Whatever the chunks hold, the next save deletes them.
        self._written[key] = (snapshot, chunks)
        parts = [found.get(f"{key}@{snapshot}#{i}") for i in range(chunks)]
        missing = [i for i, part in enumerate(parts) if part is None]
        if missing:
            raise CheckpointError(
                "truncated", f"{len(missing)} of the checkpoint's {chunks} chunks are missing"
            )
        blob = b"".join(p or b"" for p in parts)
        if _is_legacy(blob):
            raise legacy_format_error()
        return open_sealed(blob, self._secret)

    def close(self) -> None:
        self._producer.close(timeout=5)
