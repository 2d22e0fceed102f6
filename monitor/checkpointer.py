"""The service's checkpointer: when to save, and the input and output positions saved.

:class:`Checkpointer` saves the pipeline's state into a
:class:`~monitor.state.SqliteStateStore` every ``every_seconds`` (and when the
service asks, after a batch that raised alerts), with each partition's next
Kafka offset and the sizes of the output files; :func:`restore_outputs` cuts
those files back to their checkpointed sizes before they are reopened.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import structlog

from monitor.envelope import Checkpoint
from monitor.jsonl import truncate
from monitor.messages import Message
from monitor.state import SqliteStateStore, policy_digest, restore_pipeline

if TYPE_CHECKING:
    from monitor.pipeline import Pipeline

__all__ = ["Checkpointer", "Positioned", "restore_outputs"]

log = structlog.get_logger("shiftwatch.state")


class Checkpointer:
    """Checkpoints a running service every ``every_seconds``, with its Kafka offsets.

    ``outputs`` are file sinks (with ``position()``) whose sizes are recorded;
    :func:`restore_outputs` cuts them back before they are reopened.
    """

    def __init__(
        self,
        store: SqliteStateStore,
        pipeline: Pipeline,
        every_seconds: float,
        outputs: dict[str, Positioned] | None = None,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.every_seconds = every_seconds
        self.outputs = outputs or {}
        self.positions: dict[str, int] = {}
        self.dirty = False  # batches processed since the last save
        self._last = time.monotonic()

    def restore(self, checkpoint: Checkpoint | None) -> dict[str, int]:
        """Restore the pipeline from ``checkpoint``; the Kafka offsets to resume from.

        Raises :class:`~monitor.envelope.CheckpointError` (``state``) if the
        pipeline cannot take its state (then start afresh with a new pipeline).
        """
        if checkpoint is None:
            return {}
        if checkpoint.policy == policy_digest(self.pipeline.policy):
            restore_pipeline(self.pipeline, checkpoint.state)
            log.info(
                "restored checkpoint",
                saved_at=checkpoint.saved_at,
                written_by=checkpoint.code_version,
            )
        else:
            log.warning(
                "checkpoint written under another policy: detectors start afresh from its offsets"
            )
        self.positions = {k: int(v) for k, v in checkpoint.positions.get("kafka", {}).items()}
        return dict(self.positions)

    def advance(self, batch: Sequence[Message]) -> None:
        """Note the batch as processed: each partition's next offset."""
        self.dirty = self.dirty or bool(batch)
        for m in batch:
            key = f"{m.topic}:{m.partition}"
            if m.offset + 1 > self.positions.get(key, -1):
                self.positions[key] = m.offset + 1

    @property
    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_seconds

    def save(self, **extra: object) -> None:
        """Write the checkpoint: pipeline state, offsets, output sizes (and ``extra``
        positions, such as a replay's place in its file), in one transaction."""
        sizes = {name: sink.position() for name, sink in self.outputs.items()}
        self.store.save(
            Checkpoint(
                policy=policy_digest(self.pipeline.policy),
                state=self.pipeline.state(),
                positions={"kafka": dict(self.positions), "outputs": sizes, **extra},
            )
        )
        self._last = time.monotonic()
        self.dirty = False

    def close(self) -> None:
        self.store.close()


class Positioned(Protocol):
    def position(self) -> int: ...


def restore_outputs(checkpoint: Checkpoint | None, paths: dict[str, Path | None]) -> None:
    """Cut each output file back to its checkpointed size (before it is reopened for append)."""
    if checkpoint is None:
        return
    sizes = checkpoint.positions.get("outputs", {})
    for name, path in paths.items():
        if path is not None and name in sizes and path.exists():
            truncate(path, int(sizes[name]))
