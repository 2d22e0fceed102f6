"""What the pipeline did: running totals (:class:`Ledger`) and one batch's result."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from monitor.alerts import AlertRecord

__all__ = ["BatchResult", "Ledger"]


@dataclass(slots=True)
class Ledger:
    """Running totals; ``consumed == processed + dead_lettered + duplicates`` always holds."""

    consumed: int = 0
    processed: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    unjoined: int = 0
    unmonitored: int = 0
    late: int = 0
    alerts: int = 0

    def balanced(self) -> bool:
        return self.consumed == self.processed + self.dead_lettered + self.duplicates

    def add(self, other: Ledger) -> None:
        """Add another ledger's totals (e.g. of another partition's pipeline).

        >>> total = Ledger(consumed=2, processed=2)
        >>> total.add(Ledger(consumed=1, duplicates=1, alerts=1))
        >>> total.consumed, total.duplicates, total.alerts, total.balanced()
        (3, 1, 1, True)
        """
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(slots=True)
class BatchResult:
    """What one call to :meth:`Pipeline.process` did: its counts, alerts and duration."""

    counts: Ledger = field(default_factory=Ledger)
    alerts: list[AlertRecord] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def consumed(self) -> int:
        return self.counts.consumed

    def add(self, other: BatchResult) -> None:
        """Add another result (e.g. another partition's part of the same batch)."""
        self.counts.add(other.counts)
        self.alerts.extend(other.alerts)
        self.seconds += other.seconds
