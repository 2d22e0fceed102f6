"""A canary whose false negatives are learned hours later: traffic for label-delay checks.

Requests arrive at a fixed rate; each is served by the baseline or, with
probability ``canary_share``, by the candidate, and allowed (a negative
decision) with probability ``negative_share``. An allowed request is a missed
positive with probability ``fn_rate`` — in the segment ``tier=rare``
(``segment_share`` of traffic) the candidate's is ``candidate_segment_fn_rate``
— and its positive label (``fraud``) arrives an exponential delay of mean
``label_delay_seconds`` later, if ``label_share`` lets it be reported and it
falls within the run. Before the canary, the baseline may serve alone for
``baseline_lead_seconds`` at ``lead_requests_per_second`` (a baseline watched
before the rollout, as in production). ``start`` is when the canary starts.
The stream is a pure function of the parameters.

Examples
--------
>>> events = LabelDelayTraffic(duration_seconds=60.0, requests_per_second=20.0).events()
>>> sum(e["kind"] == "inference" for e in events), events[0]["segments"]
(1200, {'tier': 'common'})
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from monitor.demo.traffic import EventDict

__all__ = ["RARE_TIER", "LabelDelayTraffic"]

RARE_TIER = "rare"


@dataclass(frozen=True)
class LabelDelayTraffic:
    """The parameters of a canary with delayed labels (see the module docstring)."""

    seed: int = 1
    requests_per_second: float = 20.0
    duration_seconds: float = 3 * 3600.0
    canary_share: float = 0.5
    segment_share: float = 0.1
    negative_share: float = 0.9
    fn_rate: float = 0.01
    candidate_segment_fn_rate: float = 0.01
    label_delay_seconds: float = 2 * 3600.0
    label_share: float = 1.0
    baseline_lead_seconds: float = 0.0
    lead_requests_per_second: float = 2.0
    model: str = "fraud-scorer"
    baseline: str = "v7-fp32"
    candidate: str = "v7-int8"
    start: datetime = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def __post_init__(self) -> None:
        for name in ("canary_share", "segment_share", "negative_share", "fn_rate", "label_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.candidate_segment_fn_rate <= 1.0:
            raise ValueError("candidate_segment_fn_rate must be in [0, 1]")
        if not (self.requests_per_second > 0 and self.duration_seconds > 0):
            raise ValueError("requests_per_second and duration_seconds must be positive")
        if not (self.baseline_lead_seconds >= 0 and self.lead_requests_per_second > 0):
            raise ValueError("need baseline_lead_seconds >= 0 and lead_requests_per_second > 0")
        if not self.label_delay_seconds >= 0:
            raise ValueError("label_delay_seconds must be >= 0")

    def events(self) -> list[EventDict]:
        """Every inference and outcome of the run, in event-time order."""
        rng = np.random.default_rng(self.seed)
        lead = self.baseline_lead_seconds
        n_lead = int(lead * self.lead_requests_per_second)
        n_canary = int(self.duration_seconds * self.requests_per_second)
        n = n_lead + n_canary
        t = np.concatenate(
            (
                np.arange(n_lead) / self.lead_requests_per_second - lead,
                np.arange(n_canary) / self.requests_per_second,
            )
        )
        candidate = (rng.random(n) < self.canary_share) & (t >= 0)
        rare = rng.random(n) < self.segment_share
        negative = rng.random(n) < self.negative_share
        fn_p = np.where(candidate & rare, self.candidate_segment_fn_rate, self.fn_rate)
        positive = negative & (rng.random(n) < fn_p)
        reported = positive & (rng.random(n) < self.label_share)
        label_at = t + rng.exponential(max(self.label_delay_seconds, 1e-9), n)
        reported &= label_at < self.duration_seconds

        keyed: list[tuple[float, int, EventDict]] = []
        for i in range(n):
            keyed.append(
                (
                    float(t[i]),
                    2 * i,
                    {
                        "kind": "inference",
                        "id": f"i-{i}",
                        "time": self._stamp(float(t[i])),
                        "request_id": f"r-{i}",
                        "model": self.model,
                        "version": self.candidate if candidate[i] else self.baseline,
                        "decision": "allow" if negative[i] else "deny",
                        "segments": {"tier": RARE_TIER if rare[i] else "common"},
                    },
                )
            )
        for i in np.flatnonzero(reported).tolist():
            at = float(label_at[i])
            keyed.append(
                (
                    at,
                    2 * i + 1,
                    {
                        "kind": "outcome",
                        "id": f"o-{i}",
                        "time": self._stamp(at),
                        "request_id": f"r-{i}",
                        "label": "fraud",
                        "source": "chargeback",
                    },
                )
            )
        keyed.sort(key=lambda item: (item[0], item[1]))
        return [event for _, _, event in keyed]

    def _stamp(self, seconds: float) -> str:
        moment = self.start + timedelta(seconds=seconds)
        return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
