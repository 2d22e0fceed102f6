"""River's ADWIN, made checkpointable without pickling it.

:class:`AdaptiveWindow` wraps :class:`river.drift.ADWIN` and keeps, as plain
floats, the values its current window was built from. River's ADWIN starts a
fresh window on the update after each detection, and its window is a
deterministic function of the values fed since then, so feeding those values
to a fresh ADWIN rebuilds the same detector: that is :meth:`from_state`. To
keep that list bounded, once it holds ``max_values`` values the window is
rebuilt from the newest half (the same operation live and after a restore),
so a change is looked for within the last ``max_values`` values at most.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

if TYPE_CHECKING:
    from river.drift import ADWIN

__all__ = ["AdaptiveWindow"]


class AdaptiveWindow:
    """Change in the mean of a stream of values in [0, 1] (ADWIN), with its state as data.

    Parameters
    ----------
    delta
        ADWIN's confidence parameter: the bound on the probability of a false
        cut per check (Bifet & Gavaldà 2007, Theorem 3.1). River's default.
    max_values
        Most values the window keeps (memory: 8 bytes each); at this size it
        is rebuilt from the newest half.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> window = AdaptiveWindow()
    >>> values = np.concatenate([rng.uniform(0.0, 1.0, 200), rng.uniform(0.8, 1.0, 100)])
    >>> for i, x in enumerate(values):
    ...     window.update(float(x))
    ...     if window.drift_detected:
    ...         print(f"change found at value {i}")
    change found at value 241

    References
    ----------
    A. Bifet and R. Gavaldà, "Learning from time-changing data with adaptive
    windowing", Proceedings of the 2007 SIAM International Conference on Data
    Mining (SDM), 443-448: ADWIN2, the cut test of eq. (1) with
    ``epsilon_cut = sqrt(2/m sigma_W^2 ln(2/delta')) + 2/(3m) ln(2/delta')``.
    """

    state_keys: ClassVar[tuple[str, ...]] = ("values", "detected")
    param_keys: ClassVar[tuple[str, ...]] = ("delta", "max_values")

    def __init__(self, delta: float = 0.002, max_values: int = 1024) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        if max_values < 32:
            raise ValueError(f"max_values must be at least 32, got {max_values}")
        self.delta = float(delta)
        self.max_values = int(max_values)
        self._values: list[float] = []
        self._detected = False
        self._adwin = self._fresh()

    def _fresh(self) -> ADWIN:
        # Imported here: river.drift pulls in scikit-learn (over a second), which a
        # process should pay only once a baseline has data to watch.
        from river.drift import ADWIN

        # clock=1: a cut is looked for after every value; values here are chunks, not events.
        return ADWIN(delta=self.delta, clock=1)  # type: ignore[no-untyped-call]

    def _feed(self, x: float) -> bool:
        if self._adwin.drift_detected:
            self._values.clear()  # river starts a fresh window on this update
        self._values.append(x)
        self._adwin.update(x)  # type: ignore[no-untyped-call]
        return bool(self._adwin.drift_detected)

    def _rebuild(self, values: list[float]) -> bool:
        self._adwin, self._values = self._fresh(), []
        found = False
        for x in values:
            found = self._feed(x) or found
        return found

    def update(self, x: float) -> None:
        """Feed one value in [0, 1]."""
        x = float(x)
        if not (math.isfinite(x) and 0.0 <= x <= 1.0):
            raise ValueError(f"AdaptiveWindow takes values in [0, 1], got {x}")
        found = False
        if len(self._values) >= self.max_values:
            found = self._rebuild(self._values[-(self.max_values // 2) :])
        self._detected = self._feed(x) or found

    @property
    def drift_detected(self) -> bool:
        """Whether the last update found a change (the window then starts afresh)."""
        return self._detected

    @property
    def statistic(self) -> float:
        """The mean of the values in the current window (nan while empty)."""
        return float(self._adwin.estimation) if self._adwin.width else math.nan

    @property
    def width(self) -> int:
        """Values in the current window."""
        return int(self._adwin.width)

    def state(self) -> dict[str, Any]:
        """Plain data: the parameters and the values the current window was built from."""
        return {
            "type": type(self).__name__,
            "params": {"delta": self.delta, "max_values": self.max_values},
            "state": {
                "values": np.asarray(self._values, dtype=np.float64),
                "detected": self._detected,
            },
        }

    @classmethod
    def from_state(cls, snapshot: dict[str, Any]) -> Self:
        """A fresh ADWIN fed the saved values: the same window, the same future cuts."""
        if snapshot.get("type") != cls.__name__:
            raise ValueError(f"snapshot is of {snapshot.get('type')!r}, not {cls.__name__}")
        window = cls(**snapshot["params"])
        values = np.asarray(snapshot["state"]["values"], dtype=np.float64).reshape(-1)
        window._rebuild(values.tolist())
        window._detected = bool(snapshot["state"]["detected"])
        return window
