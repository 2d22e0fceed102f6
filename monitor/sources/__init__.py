"""Where messages come from: Kafka for ``run`` and ``demo``, a JSONL file for ``replay``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import structlog
from kafka.errors import KafkaError

from monitor.messages import Message

__all__ = ["GroupSource", "Source", "checkpoint_on_revoke"]


class Source(Protocol):
    """A source of batches. ``commit`` is called once a batch is fully processed."""

    def poll(self) -> list[Message]: ...

    def commit(self, batch: Sequence[Message]) -> None: ...

    def commit_positions(self, positions: dict[str, int]) -> None: ...

    def seek_on_assign(self, positions: dict[str, int]) -> None: ...

    def backlog(self) -> dict[str, int | None]:
        """Messages waiting per input (``topic:partition``); None where not known yet."""
        ...

    def close(self) -> None: ...

    @property
    def healthy(self) -> bool: ...


#: A rebalance hook: ``"topic:partition"`` keys in, offsets to seek to or to commit out.
RebalanceHook = Callable[[list[str]], dict[str, int]]


class GroupSource(Source, Protocol):
    """A consumer-group member (either Kafka client), with hooks for its rebalances."""

    on_assign: RebalanceHook | None
    on_revoke: RebalanceHook | None


def checkpoint_on_revoke(
    on_revoke: Callable[[list[str]], dict[str, int]], inputs: list[str]
) -> dict[str, int]:
    """Run a source's revoke hook for the ``topic:partition`` inputs leaving it: the offsets
    to commit, or none when saving their checkpoint failed on Kafka (logged; the next owner
    then resumes from the last checkpoint saved)."""
    try:
        return on_revoke(inputs)
    except KafkaError as exc:
        structlog.get_logger("shiftwatch.kafka").warning(
            "checkpoint on revoke failed", error=type(exc).__name__
        )
        return {}
