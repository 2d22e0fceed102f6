"""How fast positive labels arrive: Kaplan-Meier on the baseline's negative decisions.

A negative decision made at ``t`` is *positive by age a* when a positive
label for it arrived by ``t + a``. Decisions are followed up until the current
event time, so a young decision is right-censored: it may still get a label.
The product-limit estimator (Kaplan & Meier 1958) handles that: with ``d_k``
positive labels at ages in ``(g_{k-1}, g_k]`` among the ``n_k`` decisions
still unlabelled at ``g_{k-1}`` and followed up past ``g_k``,

    S(g_k) = prod_{j <= k} (1 - d_j / n_j)           (Kaplan & Meier 1958, eq. 2.2)

and ``C(a) = 1 - S(a)`` is the share of decisions positive by age ``a``:
``FN x F(a)``, where ``F(a)`` is the share of a decision's eventual positive
labels that have arrived by ``a``. Hence

    F(a) = C(a) / C(tau)

with ``tau`` the label horizon once some decisions have been followed up that
long. Before that, ``tau`` is the longest age with follow-up, and the ratio is
``F(a) / F(tau)``: it *overstates* ``F(a)`` by the share of labels still to come
after ``tau`` (nothing in the data can tell that share).

Decisions are grouped by decision time in buckets of ``bucket_seconds`` and
by label age on a fixed grid (the ages judged, and a ladder of four steps per
doubling up to the horizon); a bucket counts at grid point ``g_k`` only when
its youngest decision has been followed up past ``g_k``, so every count used
at event time ``T`` comes from events at or before ``T``. Buckets followed up
past the horizon are summed into one row, so memory is bounded by
``horizon / bucket_seconds`` rows.

References
----------
E. L. Kaplan and P. Meier, "Nonparametric estimation from incomplete
observations", J. Amer. Statist. Assoc. 53(282), 457-481, 1958.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["LabelArrival", "age_grid"]

#: Grid points per doubling of label age.
_PER_DOUBLING = 4


def age_grid(ages: Sequence[float], horizon: float) -> tuple[float, ...]:
    """The label ages the estimator resolves: ``ages`` and a ladder up to ``horizon``.

    >>> [round(g) for g in age_grid([3600.0], 4 * 3600.0)[-6:]]
    [6054, 7200, 8562, 10182, 12109, 14400]
    """
    lowest = min(ages, default=horizon) / 8.0
    ladder = []
    j = 0
    while (g := horizon * 2.0 ** (-j / _PER_DOUBLING)) > lowest:
        ladder.append(g)
        j += 1
    return tuple(sorted({*ladder, *(float(a) for a in ages), float(horizon)}))


class LabelArrival:
    """The label-arrival curve ``F(a)`` of one model's baseline, by Kaplan-Meier.

    Parameters
    ----------
    ages
        The label ages at which ``F`` is asked for (each below ``horizon``).
    horizon
        The label horizon: ``F(horizon) = 1`` by definition.
    bucket_seconds
        Width of the decision-time buckets.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> est = LabelArrival([3600.0], horizon=86_400.0, bucket_seconds=600.0)
    >>> t = rng.uniform(0, 3 * 86_400, 20_000)
    >>> delay = rng.exponential(7200.0, t.size)        # labels 2 h late on average
    >>> positive = rng.random(t.size) < 0.05
    >>> for at, d, pos in zip(t, delay, positive):
    ...     est.add_decision(at)
    ...     if pos and at + d <= 3 * 86_400:
    ...         est.add_label(at, d)
    >>> share, complete = est.share(3600.0, 3 * 86_400)  # 1 - exp(-1/2) = 0.39
    >>> round(share, 2), complete
    (0.39, True)

    References
    ----------
    E. L. Kaplan and P. Meier, "Nonparametric estimation from incomplete
    observations", J. Amer. Statist. Assoc. 53(282), 457-481, 1958.
    """

    def __init__(self, ages: Sequence[float], horizon: float, bucket_seconds: float) -> None:
        if not horizon > 0 or not bucket_seconds > 0:
            raise ValueError("need horizon > 0 and bucket_seconds > 0")
        if any(not 0 < a < horizon for a in ages):
            raise ValueError(f"every age must be in (0, horizon={horizon}), got {list(ages)}")
        self.ages = tuple(float(a) for a in ages)
        self.horizon = float(horizon)
        self.bucket_seconds = float(bucket_seconds)
        self.grid: NDArray[np.float64] = np.asarray(age_grid(self.ages, self.horizon))
        #: Per decision-time bucket: [decisions, labels in age bin 0, 1, ...].
        self._rows: dict[int, NDArray[np.float64]] = {}
        #: Buckets followed up past the horizon, summed.
        self._complete = np.zeros(1 + self.grid.size)
        self._folded_below = -math.inf
        self._labels = 0.0

    def _row(self, at: float) -> NDArray[np.float64] | None:
        b = math.floor(at / self.bucket_seconds)
        if b < self._folded_below:
            return None  # a decision older than the horizon: its labels are already final
        row = self._rows.get(b)
        if row is None:
            row = self._rows[b] = np.zeros(1 + self.grid.size)
        return row

    def add_decision(self, at: float, n: float = 1.0) -> None:
        """Count ``n`` negative decisions made at event time ``at``."""
        row = self._row(at)
        if row is not None:
            row[0] += n

    def add_label(self, at: float, age: float) -> None:
        """Count a positive label ``age`` seconds after its decision at ``at``.

        Labels beyond the horizon are ignored (they are late for the check too).
        """
        if age > self.horizon:
            return
        row = self._row(at)
        if row is not None:
            k = int(np.searchsorted(self.grid, max(age, 0.0), side="left"))
            row[1 + k] += 1.0
            self._labels += 1.0

    def cumulative(self, now: float) -> tuple[NDArray[np.float64], int]:
        """``C(g_k)`` on the grid at event time ``now``, and the last grid index with follow-up.

        The index is -1 when no decision has been followed up past the first grid point.
        """
        width = self.bucket_seconds
        keys = sorted(self._rows)
        rows = np.vstack([self._complete, *(self._rows[b] for b in keys)])
        follow = np.concatenate(([math.inf], [now - (b + 1) * width for b in keys]))
        decisions, labels = rows[:, 0], rows[:, 1:]
        before = np.cumsum(labels, axis=1) - labels  # labels at earlier ages, per bucket
        seen = follow[:, None] >= self.grid[None, :]
        at_risk = ((decisions[:, None] - before) * seen).sum(axis=0)
        events = (labels * seen).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            hazard = np.where(at_risk > 0, events / at_risk, 0.0)
        followed = np.flatnonzero(at_risk > 0)
        last = int(followed[-1]) if followed.size else -1
        cumulative = np.asarray(1.0 - np.cumprod(1.0 - hazard), dtype=np.float64)
        return cumulative, last

    def share(self, age: float, now: float) -> tuple[float, bool]:
        """``F(age)`` at event time ``now``: ``C(age) / C(tau)`` (nan while it cannot be
        told), and whether ``tau`` is the horizon (else the share is overstated)."""
        c, last = self.cumulative(now)
        k = int(np.searchsorted(self.grid, age, side="left"))
        if last < k or not c[last] > 0:
            return math.nan, False
        return float(min(c[k] / c[last], 1.0)), last == self.grid.size - 1

    def labels(self) -> float:
        """Positive labels counted so far (within the horizon)."""
        return self._labels

    def fold(self, now: float) -> None:
        """Sum the buckets followed up past the horizon at ``now`` into one row.

        ``now`` must be no later than any event time the estimate is asked for
        afterwards; the result of :meth:`cumulative` does not change.
        """
        limit = math.floor((now - self.horizon) / self.bucket_seconds)
        for b in [b for b in self._rows if b < limit]:
            self._complete += self._rows.pop(b)
        self._folded_below = max(self._folded_below, limit)

    # -- checkpoints -------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        keys = sorted(self._rows)
        return {
            "folded_below": self._folded_below,
            "complete": self._complete.copy(),
            "index": np.asarray(keys, dtype=np.int64),
            "rows": np.asarray([self._rows[b] for b in keys], dtype=np.float64).reshape(
                len(keys), 1 + self.grid.size
            ),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state` (the same ages, horizon and bucket width)."""
        rows = np.asarray(state["rows"], dtype=np.float64)
        if rows.shape[1:] != (1 + self.grid.size,):
            raise ValueError(f"arrival rows of {rows.shape} do not fit {self.grid.size} ages")
        self._complete = np.asarray(state["complete"], dtype=np.float64).reshape(-1).copy()
        index = np.asarray(state["index"], dtype=np.int64).tolist()
        self._rows = {int(b): row.copy() for b, row in zip(index, rows, strict=True)}
        self._folded_below = float(state["folded_below"])
        rows_labels = sum(float(r[1:].sum()) for r in self._rows.values())
        self._labels = float(self._complete[1:].sum()) + rows_labels
