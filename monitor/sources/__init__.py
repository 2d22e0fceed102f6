"""Where messages come from: Kafka for ``run`` and ``demo``, a JSONL file for ``replay``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from monitor.messages import Message

__all__ = ["GroupSource", "Source"]


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
