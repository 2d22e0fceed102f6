"""The detector contract shared by every online detector in this package.

A detector's constructor arguments are public attributes of the same name;
its changing state is private and named in ``state_keys`` so it can be
checkpointed with :meth:`Detector.state` and restored with
:meth:`Detector.from_state`. Thresholds are computed before construction (see
:mod:`detectors.calibration`), never inside ``update``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np

__all__ = ["Detector", "Evidence"]


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a detector has seen, for an alert record or a dashboard.

    ``observed`` is the candidate's value of the compared quantity (a rate, a
    distance, 1.0 for a novel tool seen), ``reference`` the baseline's (nan
    where there is none); ``baseline_seen`` and ``candidate_seen`` count the
    observations behind each;
    ``details`` holds what only this detector knows (the distance used, the
    novel tool, the per-detector ARL0).
    """

    observed: float
    reference: float
    baseline_seen: float
    candidate_seen: float
    details: dict[str, Any] = field(default_factory=dict)


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return value


class Detector(ABC):
    """Base: ``update``/``update_many``, read-only ``drift_detected`` and ``statistic``."""

    #: Names of the private attributes (without the leading underscore) that change on update.
    state_keys: ClassVar[tuple[str, ...]] = ()
    #: Names of the constructor parameters, restored as-is by :meth:`from_state`.
    param_keys: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def update(self, x: Any) -> None:
        """Feed one candidate observation."""

    def update_many(self, xs: Any) -> None:
        """Feed a batch of candidate observations in order (same result as one by one)."""
        for x in xs:
            self.update(x)

    @property
    @abstractmethod
    def drift_detected(self) -> bool:
        """Whether the evidence has crossed the threshold (latched until :meth:`reset`)."""

    @property
    @abstractmethod
    def statistic(self) -> float:
        """The current evidence statistic, comparable with the detector's threshold."""

    @property
    @abstractmethod
    def threshold(self) -> float:
        """What :attr:`statistic` is compared with (nan while not yet calibrated)."""

    @property
    @abstractmethod
    def ready(self) -> bool:
        """Whether the baseline has shown enough for the test to run."""

    @property
    @abstractmethod
    def conclusive(self) -> bool:
        """Whether both sides have enough data for "no drift" to mean something."""

    @abstractmethod
    def reset(self) -> None:
        """Forget the candidate's evidence, keeping what the baseline has shown."""

    @abstractmethod
    def evidence(self) -> Evidence:
        """The observed and reference values and the data behind them."""

    def state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot: parameters and private state."""
        return {
            "type": type(self).__name__,
            "params": {k: _encode(getattr(self, k)) for k in self.param_keys},
            "state": {k: _encode(getattr(self, f"_{k}")) for k in self.state_keys},
        }

    @classmethod
    def from_state(cls, snapshot: dict[str, Any]) -> Self:
        """Rebuild a detector from :meth:`state`; its future decisions are identical."""
        if snapshot.get("type") != cls.__name__:
            raise ValueError(f"snapshot is of {snapshot.get('type')!r}, not {cls.__name__}")
        det = cls(**snapshot["params"])
        for key in cls.state_keys:
            current = getattr(det, f"_{key}")
            value = snapshot["state"][key]
            if isinstance(current, np.ndarray):
                value = np.asarray(value, dtype=current.dtype).reshape(current.shape)
            setattr(det, f"_{key}", value)
        return det
