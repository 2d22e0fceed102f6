"""A false-negative rate judged at equal label ages, long before the label horizon.

The false-negative rate of a negative decision is only final once its label
had time to come (the label horizon, days). Judged at a label age ``a`` below
the horizon instead — a decision counts as positive *so far* if its positive
label arrived within ``a`` seconds of it — the candidate's and the baseline's
decisions are censored identically, so the comparison is fair as soon as
decisions are ``a`` seconds old. Under the assumption that the label delay
does not depend on the model version, the share seen at age ``a`` is
``FN x F(a)`` for both, where ``F(a)`` is the share of eventual positive labels
that arrive by ``a`` (:mod:`detectors.arrival`):

- a relative tolerance (``max_relative_change``) is unchanged: ``F(a)`` cancels
  in the ratio;
- an absolute tolerance (``max_increase``, ``max_decrease``) is scaled by
  ``F(a)``, estimated from the baseline (Kaplan-Meier), and fixed when the
  age's test starts.

One :class:`~detectors.RateShiftDetector` runs per age, and one at the horizon
(the final judgement, as without ages); the false-alarm budget is split
evenly over them (union bound). An age's test starts once the baseline has
``min_labels`` positive labels at that age.

*Inside* the tolerance is shown by time-uniform bounds (:mod:`detectors.bounds`):
at an age, the upper bound on the candidate's share must be below the lower
bound on the baseline's plus the scaled tolerance (and the mirror for a
decrease), each bound at level ``alpha / (2 x ages x directions)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np

from detectors.base import Detector, Evidence
from detectors.bounds import share_bounds
from detectors.rate import RateShiftDetector

__all__ = ["EqualAgeRateDetector"]


class EqualAgeRateDetector(Detector):
    """False-negative rate tested at equal label ages and at the label horizon.

    Parameters
    ----------
    ages
        The label ages (seconds) judged before the horizon; empty: the horizon only.
    arl0
        The detector's in-control run length, in candidate observations, shared
        evenly by its ``len(ages) + 1`` tests.
    max_increase, max_decrease
        Absolute tolerances on the final (horizon) rate; at an age they are
        scaled by the label-arrival share ``F(age)``.
    max_relative_change
        Two-sided relative tolerance (instead of the two above); the same at every age.
    min_labels
        Baseline positive labels at an age before that age is judged.
    alpha
        Error level of "inside the tolerance" (a pass), over every age and time.
    baseline_confidence
        Confidence with which each age's rate test keeps its false-alarm promise given
        the baseline sample (:class:`~detectors.rate.RateShiftDetector`).

    Examples
    --------
    >>> rng = np.random.default_rng(5)
    >>> det = EqualAgeRateDetector([3600.0], arl0=1e6, max_relative_change=0.5)
    >>> det.update_reference_at(0, count=int((rng.random(50_000) < 0.004).sum()), exposure=50_000)
    >>> for _ in range(20):                            # FN up fivefold, seen at 1 h
    ...     det.update_at(0, count=int((rng.random(1_000) < 0.02).sum()), exposure=1_000)
    >>> det.drift_detected, det.fired_age
    (True, 3600.0)

    References
    ----------
    E. L. Kaplan and P. Meier, "Nonparametric estimation from incomplete
    observations", J. Amer. Statist. Assoc. 53(282), 457-481, 1958.
    S. R. Howard, A. Ramdas, J. McAuliffe and J. Sekhon, "Time-uniform,
    nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2),
    1055-1080, 2021.
    """

    state_keys: ClassVar[tuple[str, ...]] = (
        "ref_at",
        "cand_at",
        "arrival",
        "complete",
        "scale",
        "fired",
    )
    param_keys: ClassVar[tuple[str, ...]] = (
        "ages",
        "arl0",
        "max_increase",
        "max_decrease",
        "max_relative_change",
        "min_labels",
        "alpha",
        "baseline_confidence",
    )

    def __init__(
        self,
        ages: Sequence[float] = (),
        *,
        arl0: float,
        max_increase: float | None = None,
        max_decrease: float | None = None,
        max_relative_change: float | None = None,
        min_labels: float = 20.0,
        alpha: float = 1e-3,
        baseline_confidence: float = 0.9,
    ) -> None:
        if any(not (math.isfinite(a) and a > 0) for a in ages):
            raise ValueError(f"ages must be positive and finite, got {list(ages)}")
        if not min_labels >= 1:
            raise ValueError(f"min_labels must be >= 1, got {min_labels}")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        self.ages = tuple(float(a) for a in ages)
        self.arl0 = float(arl0)
        self.max_increase = max_increase
        self.max_decrease = max_decrease
        self.max_relative_change = max_relative_change
        self.min_labels = float(min_labels)
        self.alpha = float(alpha)
        self.baseline_confidence = float(baseline_confidence)
        k = len(self.ages)
        # The horizon's test validates the tolerance and the budget.
        self.horizon = self._rate_detector(1.0)
        self._at: list[RateShiftDetector | None] = [None] * k
        self._ref_at = np.zeros((k, 2))  # baseline (count, exposure) per age
        self._cand_at = np.zeros((k, 2))  # candidate (count, exposure) per age
        self._arrival = np.full(k, -1.0)  # latest F(age) estimate (-1: none yet)
        self._complete = np.zeros(k)  # 1 where it rests on a full horizon of follow-up
        self._scale = np.zeros(k)  # F(age) the age's test started with (0: not started)
        self._fired = -1  # the age index that fired, k for the horizon, -1 for none
        # inside_at per age, for the counts it was computed on (derived: not state).
        self._inside: dict[int, tuple[tuple[float, ...], bool]] = {}

    def _rate_detector(self, scale: float) -> RateShiftDetector:
        """A rate test with this detector's share of the budget and the tolerance x ``scale``."""
        absolute = (self.max_increase, self.max_decrease)
        up, down = (None if t is None else t * scale for t in absolute)
        return RateShiftDetector(
            "bernoulli",
            arl0=self.arl0 * (len(self.ages) + 1),
            max_increase=up,
            max_decrease=down,
            max_relative_change=self.max_relative_change,
            baseline_confidence=self.baseline_confidence,
        )

    # -- feeding -----------------------------------------------------------------------
    def update_reference(self, count: float, exposure: float) -> None:
        """Baseline data at the horizon."""
        self.horizon.update_reference(count, exposure)

    def update(self, x: Any) -> None:
        """Candidate data at the horizon: one Bernoulli outcome or a (count, exposure) pair."""
        self.horizon.update(x)
        if self.horizon.drift_detected and self._fired < 0:
            self._fired = len(self.ages)

    def update_reference_at(self, k: int, count: float, exposure: float) -> None:
        """Baseline data at age ``ages[k]``: positives by that age among decisions that old."""
        self._ref_at[k] += (count, exposure)
        det = self._at[k]
        if det is not None:
            det.update_reference(count, exposure)

    def set_arrival(self, k: int, share: float, *, complete: bool) -> None:
        """The latest estimate of ``F(ages[k])``, the share of labels in by that age.

        ``complete``: whether it rests on decisions followed up for the whole
        horizon. Before that it overstates ``F`` (labels later than the longest
        follow-up are unseen): it may scale the tolerance of a breach (which it
        only delays) but not show an absolute tolerance met.
        """
        known = math.isfinite(share) and 0 < share <= 1
        self._arrival[k] = share if known else -1.0
        self._complete[k] = float(complete and known)

    def update_at(self, k: int, count: float, exposure: float) -> None:
        """Candidate data at age ``ages[k]``."""
        self._cand_at[k] += (count, exposure)
        det = self._start(k)
        if det is None:
            return
        det.update((float(count), float(exposure)))
        if det.drift_detected and self._fired < 0:
            self._fired = k

    def _start(self, k: int) -> RateShiftDetector | None:
        """The test at age ``k``, started once the baseline has enough labels there."""
        det = self._at[k]
        if det is not None:
            return det
        share = float(self._arrival[k])
        relative = self.max_relative_change is not None
        if not (relative or 0 < share <= 1):
            return None
        scale = 1.0 if relative else share
        det = self._at[k] = self._rate_detector(scale)
        self._scale[k] = scale
        det.update_reference(*self._ref_at[k])
        return det

    # -- "inside the tolerance" ---------------------------------------------------------
    def inside_at(self, k: int) -> bool:
        """Whether time-uniform bounds put the candidate inside its tolerance at age ``k``."""
        key = (*self._ref_at[k], *self._cand_at[k], self._arrival[k], self._complete[k])
        cached = self._inside.get(k)
        if cached is None or cached[0] != key:
            cached = self._inside[k] = (key, self._bounds_inside(k))
        return cached[1]

    def _bounds_inside(self, k: int) -> bool:
        (x_b, n_b), (x_c, n_c) = self._ref_at[k], self._cand_at[k]
        if x_b < self.min_labels or n_c < self.horizon.min_observations:
            return False
        scale = 1.0
        if self.max_relative_change is None:
            scale = float(self._arrival[k])
            if not (0 < scale <= 1 and self._complete[k]):
                return False
        sides = (
            2
            if self.max_relative_change is not None
            else ((self.max_increase is not None) + (self.max_decrease is not None))
        )
        alpha = self.alpha / (2 * sides * max(len(self.ages), 1))
        low_b, high_b = share_bounds(x_b, n_b, alpha)
        low_c, high_c = share_bounds(x_c, n_c, alpha)
        rel = self.max_relative_change
        if rel is not None:
            return high_c < low_b * (1 + rel) and low_c > high_b * (1 - rel)
        ok = True
        if self.max_increase is not None:
            ok = ok and high_c < low_b + self.max_increase * scale
        if self.max_decrease is not None:
            ok = ok and low_c > high_b - self.max_decrease * scale
        return ok

    @property
    def inside_age(self) -> float | None:
        """The youngest label age at which the candidate is shown inside (None: none yet)."""
        for k, age in enumerate(self.ages):
            if self.inside_at(k):
                return age
        return None

    # -- read-only results --------------------------------------------------------------
    @property
    def fired_age(self) -> float | None:
        """The label age whose test fired (the horizon's for a horizon alarm; None: none)."""
        if self._fired < 0:
            return None
        return self.ages[self._fired] if self._fired < len(self.ages) else math.inf

    @property
    def fired_detector(self) -> RateShiftDetector:
        """The test that fired (the horizon's when none did): its boundaries end a breach."""
        if 0 <= self._fired < len(self.ages):
            det = self._at[self._fired]
            if det is not None:
                return det
        return self.horizon

    @property
    def fired_index(self) -> int:
        """Index of the age that fired, ``len(ages)`` for the horizon, -1 for none."""
        return self._fired

    @property
    def drift_detected(self) -> bool:
        return self._fired >= 0

    @property
    def ready(self) -> bool:
        return self.horizon.ready or any(d is not None and d.ready for d in self._at)

    @property
    def conclusive(self) -> bool:
        """A breach, the horizon's test conclusive, or the candidate shown inside at an age."""
        return self.drift_detected or self.horizon.conclusive or self.inside_age is not None

    def _lead(self) -> int:
        """Which test the evidence shows: the one that fired, else the horizon once it has
        candidate data, else the oldest age with candidate data (``len(ages)``: the horizon)."""
        if self._fired >= 0:
            return self._fired
        if self.horizon.exposure > 0:
            return len(self.ages)
        seen = np.flatnonzero(self._cand_at[:, 1] > 0)
        return int(seen[-1]) if seen.size else len(self.ages)

    @property
    def statistic(self) -> float:
        k = self._lead()
        det = self.horizon if k == len(self.ages) else self._at[k]
        return det.statistic if det is not None else 0.0

    @property
    def threshold(self) -> float:
        k = self._lead()
        det = self.horizon if k == len(self.ages) else self._at[k]
        return det.threshold if det is not None else math.nan

    @property
    def boundaries(self) -> tuple[float | None, float | None]:
        """The lead test's tolerance boundaries (upper, lower), in the units of its rates:
        at an age, the shares positive by that age (the horizon's until that test starts)."""
        k = self._lead()
        det = self.horizon if k == len(self.ages) else self._at[k]
        return (det if det is not None else self.horizon).boundaries

    def evidence(self) -> Evidence:
        """The lead test's rates: at an age, the shares positive by that age, and the age."""
        k = self._lead()
        if k == len(self.ages):
            return self.horizon.evidence()
        (x_b, n_b), (x_c, n_c) = self._ref_at[k], self._cand_at[k]
        details: dict[str, Any] = {
            "detector_arl0": self.arl0 * (len(self.ages) + 1),
            "label_age_seconds": self.ages[k],
        }
        share = float(self._scale[k]) if self._scale[k] > 0 else float(self._arrival[k])
        if self.max_relative_change is None and share > 0:
            details["label_arrival"] = share
        return Evidence(
            x_c / n_c if n_c else math.nan,
            x_b / n_b if n_b else math.nan,
            float(n_b),
            float(n_c),
            details,
        )

    def reset(self) -> None:
        """Forget the candidate's evidence at every age and at the horizon."""
        self.horizon.reset()
        for det in self._at:
            if det is not None:
                det.reset()
        self._cand_at[:] = 0.0
        self._fired = -1

    # -- checkpoints --------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        snapshot = super().state()
        snapshot["horizon"] = self.horizon.state()
        snapshot["at"] = [d.state() if d is not None else None for d in self._at]
        return snapshot

    @classmethod
    def from_state(cls, snapshot: dict[str, Any]) -> Self:
        det = super().from_state(snapshot)
        det.horizon = RateShiftDetector.from_state(snapshot["horizon"])
        det._at = [
            RateShiftDetector.from_state(s) if s is not None else None for s in snapshot["at"]
        ]
        det._fired = int(det._fired)
        return det

    @classmethod
    def around(cls, horizon: RateShiftDetector, ages: Sequence[float], **params: Any) -> Self:
        """A detector whose horizon test continues ``horizon`` (a checkpoint without ages)."""
        det = cls(ages, **params)
        det.horizon = horizon
        if horizon.drift_detected:
            det._fired = len(det.ages)
        return det
