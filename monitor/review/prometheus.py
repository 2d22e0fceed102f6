"""The review's history read from a Prometheus server that scraped the monitor.

``shiftwatch review --prometheus URL`` builds the report from what Prometheus
kept of the monitor's metrics (:mod:`monitor.metrics`) instead of the
monitor's own history file. :class:`PrometheusHistory` evaluates each metric
with a range query on one grid of steps that ends at ``until`` (``until``,
``until - step``, ... back to ``since``, so the latest state is always read) and
turns the answers into history rows:

- a :class:`~monitor.history.rows.CheckSample` per (model, version, check,
  segment) and step, from ``shiftwatch_check_state`` joined with the observed,
  reference, allowed-band, statistic, threshold and sample gauges;
- a :class:`~monitor.history.rows.VersionSample` per version and step with
  events, from the increase of ``shiftwatch_model_events_total`` (by kind) and
  of the latency counters (a mean per step; no latency bins);
- a :class:`~monitor.history.rows.VerdictChange` whenever the verdict
  *reconstructed* at a step differs from the step before, by the rule of
  :func:`monitor.verdict.model_verdict`: ``fail`` while
  ``shiftwatch_rollback_required`` is 1; else ``inconclusive`` while any
  stream is breached; else ``pass`` when every check is ``ok`` on the overall
  stream; else ``inconclusive``;
- a :class:`~monitor.history.rows.DriftSample` per model and step, from
  ``shiftwatch_baseline_drift`` and ``shiftwatch_baseline_drift_changes_total``;
- a :class:`~monitor.history.rows.VersionSpan` per version, from its first and
  last step with inferences;
- a :class:`~monitor.history.rows.ModelRecord` per model, from
  ``shiftwatch_check_info`` (check names, metrics, actions, severities), or the
  model's part of a policy file when one is given.

Every ``at`` is a Prometheus evaluation time on the step grid: wall-clock time
of the scrapes, not the event time (watermark) the monitor's own history
records. A value is the newest one scraped in the window that ends at the step
(``last_over_time`` over the step, or over Prometheus's 5-minute lookback when
the step is shorter), so what changed and changed back within one step is not
seen, and a monitor that stopped still shows its last state for a window.
Counts come from counter differences between consecutive steps (a drop is a
restart: the new value is the increase); a series first seen inside the
period counts from zero, so what was counted before Prometheus's first scrape
lands on that first step. What Prometheus cannot give is listed by
:meth:`PrometheusHistory.gaps`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime

import structlog

from monitor.history.memory import MemoryHistory
from monitor.history.rows import ModelRecord
from monitor.policy import ModelPolicy, Policy
from monitor.review.prometheus_rows import (
    Key,
    Points,
    check_samples,
    drift_samples,
    increments,
    spans,
    verdict_changes,
    version_samples,
)
from monitor.review.promql import PrometheusApi, PrometheusError

__all__ = ["PrometheusError", "PrometheusHistory"]

log = structlog.get_logger("shiftwatch.review")

#: Labels of every per-check series.
CHECK_LABELS = ("model", "version", "check", "segment")
#: CheckSample field -> the gauge holding it (same labels as ``shiftwatch_check_state``).
CHECK_GAUGES = {
    "observed": "shiftwatch_check_observed",
    "reference": "shiftwatch_check_reference",
    "lower": "shiftwatch_check_allowed_lower",
    "upper": "shiftwatch_check_allowed_upper",
    "statistic": "shiftwatch_check_statistic",
    "threshold": "shiftwatch_check_threshold",
}

#: Prometheus's default lookback: a step reads the newest sample at most this old.
LOOKBACK_SECONDS = 300.0
#: Most steps one history reads per series (a year at one minute is 525,600).
MAX_STEPS = 600_000

#: What a Prometheus server cannot give the review, whatever it scraped.
ALWAYS_MISSING = (
    "Prometheus holds no per-tool counts: the tool-use mix and privileged tools need the "
    "monitor's history file.",
    "Latency is a mean per step (sum and count counters): medians and tails need the "
    "monitor's history file.",
    "Sign-offs are recorded in the monitor's history file only; none are read from Prometheus.",
)


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


class PrometheusHistory(MemoryHistory):
    """A :class:`~monitor.history.rows.HistorySource` read from Prometheus's HTTP API.

    The rows are fetched once, when the object is built, and held in memory.

    Parameters
    ----------
    url
        The Prometheus server, e.g. ``http://127.0.0.1:9090`` (any URL the user gives).
    since, until
        The period, epoch seconds, inclusive.
    step
        Seconds between evaluations; one sample per step per series. A week at the
        default minute is 10,080 samples per series.
    timeout
        Seconds to wait for each answer.
    policy
        The policy file (or one model's policy) the monitor ran with: it gives the
        tolerances, owner, controls and segments that Prometheus does not hold.

    Raises
    ------
    PrometheusError
        If the server cannot be reached or read, or holds no ``shiftwatch_check_state``
        series in the period.
    """

    def __init__(
        self,
        url: str,
        *,
        since: float,
        until: float,
        step: float = 60.0,
        timeout: float = 10.0,
        policy: ModelPolicy | Policy | None = None,
    ) -> None:
        super().__init__()
        if not (math.isfinite(since) and math.isfinite(until) and since <= until):
            raise ValueError(f"since ({since!r}) must be a time at or before until ({until!r})")
        if not (math.isfinite(step) and step > 0):
            raise ValueError(f"step must be a positive number of seconds, got {step!r}")
        if (until - since) / step > MAX_STEPS:
            raise ValueError(
                f"{(until - since) / step:.0f} steps of {step:g} s from since to until: more "
                f"than {MAX_STEPS} per series; give a larger step"
            )
        # Prometheus rounds the times it is given to the millisecond: on whole milliseconds
        # (until and step rounded down, at least 1 ms) its grid ends at ``until`` exactly,
        # never just past it.
        step = max(math.floor(step * 1000.0), 1) / 1000.0
        self.url, self.since, self.step = url, float(since), step
        self.until = math.floor(until * 1000.0) / 1000.0
        #: The first step: the grid ends exactly at ``until``, so the latest state is read.
        self.start = self.until - math.floor((self.until - self.since) / self.step) * self.step
        self.start = math.ceil(self.start * 1000.0 - 1e-6) / 1000.0
        self.api = PrometheusApi(url, timeout)
        policies: list[ModelPolicy] = []
        if isinstance(policy, Policy):
            policies = list(policy.models)
        elif policy is not None:
            policies = [policy]
        self.policies = {p.name: p for p in policies}
        self._duplicates: set[str] = set()
        self._load()
        log.info("prometheus history read", url=self.url, step=self.step, **self.describe())

    # -- reading ---------------------------------------------------------------------------

    def _range(
        self, query: str, labels: tuple[str, ...], start: float | None = None
    ) -> dict[Key, Points]:
        """``query``'s series on the grid, keyed by the values of ``labels``.

        Prometheus drops a label whose value is empty (the overall stream's
        ``segment``), so a missing label reads as ``""``. Where several scrape
        targets export the same key, the first target (by job and instance) is read.
        """
        start = self.start if start is None else start
        # The newest sample in the window ending at each step: a step longer than the
        # lookback still sees what was scraped within it, and a target that stopped (whose
        # series Prometheus marks stale at once) still shows its last state.
        window = max(self.step, LOOKBACK_SECONDS)
        windowed = f"last_over_time({query}[{round(window * 1000)}ms])"
        found: dict[Key, tuple[tuple[str, str], Points]] = {}
        for series in self.api.range(windowed, start, self.until, self.step):
            key = tuple(series.labels.get(name, "") for name in labels)
            target = (series.labels.get("job", ""), series.labels.get("instance", ""))
            held = found.get(key)
            if held is not None and held[0] != target:
                self._duplicates.add(" ".join(sorted({"/".join(held[0]), "/".join(target)})))
                if held[0] < target:
                    continue
            found[key] = (target, series.at())
        return {key: points for key, (_, points) in found.items()}

    def _counter(self, query: str, labels: tuple[str, ...]) -> dict[Key, Points]:
        """Increases per step of ``query``'s counters (the step before ``since`` is the base)."""
        base_at = self.start - self.step
        raw = self._range(query, labels, start=base_at)
        return {key: increments(points, base_at) for key, points in raw.items()}

    def _load(self) -> None:
        states = self._range("shiftwatch_check_state", CHECK_LABELS)
        if not states:
            raise PrometheusError(
                f"no shiftwatch_check_state series at {self.url} between {_when(self.since)} "
                f"and {_when(self.until)}: is Prometheus scraping the monitor?"
            )
        gauges = {field: self._range(name, CHECK_LABELS) for field, name in CHECK_GAUGES.items()}
        seen = self._range("shiftwatch_check_samples", (*CHECK_LABELS, "side"))
        info = self._range(
            "shiftwatch_check_info", ("model", "version", "check", "metric", "action", "severity")
        )
        rollback = self._range("shiftwatch_rollback_required", ("model", "version"))
        events = self._counter("shiftwatch_model_events_total", ("model", "version", "kind"))
        latency = {
            "sum": self._counter(
                "shiftwatch_inference_latency_seconds_total", ("model", "version")
            ),
            "count": self._counter(
                "shiftwatch_inference_latency_observations_total", ("model", "version")
            ),
        }
        drift = self._range("shiftwatch_baseline_drift", ("model", "check"))
        changes = self._range("shiftwatch_baseline_drift_changes_total", ("model", "check"))
        alerts = self._counter("shiftwatch_alerts_total", ("model", "action", "status"))

        self.checks = check_samples(states, gauges, seen)
        candidates = {(m, v) for m, v, _, _ in states}
        baselines = self._baselines(events, candidates)
        self.served = version_samples(events, latency, baselines)
        self.spans = spans(self.served)
        self.verdicts = verdict_changes(states, info, rollback)
        self.drift = drift_samples(drift, changes)
        self.model_records = self._model_records(info, baselines)
        self.missing = self._gaps(alerts)

    def _baselines(self, events: dict[Key, Points], candidates: set[tuple[str, str]]) -> set[Key]:
        """(model, version) of each baseline: the policy's, else the versions counted that
        have no check series (checks run on candidates only)."""
        out: set[Key] = set()
        for model, version, _ in events:
            policy = self.policies.get(model)
            if policy is not None:
                if version == policy.baseline:
                    out.add((model, version))
            elif (model, version) not in candidates:
                out.add((model, version))
        return out

    def _model_records(self, info: dict[Key, Points], baselines: set[Key]) -> list[ModelRecord]:
        first: dict[str, float] = {}
        latest: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)
        candidates: dict[str, set[str]] = defaultdict(set)
        for (model, version, check, metric, action, severity), points in sorted(
            info.items(), key=lambda item: max(item[1], default=0.0)
        ):
            if not points:
                continue
            first[model] = min(first.get(model, math.inf), min(points))
            candidates[model].add(version)
            latest[model][check] = {
                "name": check,
                "metric": metric,
                "action": action,
                "severity": severity,
            }
        records = []
        for model in sorted(first):
            policy = self.policies.get(model)
            if policy is not None:
                data = policy.model_dump(mode="json")
            else:
                own = sorted(v for m, v in baselines if m == model)
                data = {
                    "name": model,
                    "baseline": own[0] if len(own) == 1 else None,
                    "candidates": sorted(candidates[model]),
                    "checks": [latest[model][name] for name in sorted(latest[model])],
                }
            records.append(ModelRecord(model=model, at=first[model], policy=data))
        return records

    def _gaps(self, alerts: dict[Key, Points]) -> list[str]:
        gaps = [
            f"Read from Prometheus at {self.url}: times are Prometheus evaluation times every "
            f"{self.step:g} s (wall clock), not the event time of the monitor's own history.",
            "Verdict changes are reconstructed from shiftwatch_rollback_required and the check "
            "states at each step; a change shorter than a step may not show.",
            *ALWAYS_MISSING,
        ]
        counted: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
        for (model, action, status), points in alerts.items():
            counted[model][(status, action)] = round(sum(points.values()))
        for model, counts in sorted(counted.items()):
            parts = ", ".join(
                f"{n} {status} {action}" for (status, action), n in sorted(counts.items()) if n
            )
            gaps.append(
                f"{model}: Prometheus counts alerts only ({parts or 'none'} in the period); "
                "alert ids, evidence and times to detect need the monitor's history file."
            )
        known = {r.model for r in self.model_records}
        unexplained = sorted(known - set(self.policies))
        if unexplained:
            gaps.append(
                f"{', '.join(unexplained)}: tolerances, owner, controls and segments are not in "
                "Prometheus; give the policy file to show them."
            )
        for model in sorted(known & set(self.policies)):
            written = {c.name for c in self.policies[model].checks}
            exported = {c.check for c in self.checks if c.model == model}
            if exported - written:
                gaps.append(
                    f"{model}: Prometheus shows checks {sorted(exported - written)} that the "
                    "given policy file does not have: was the monitor run with another policy?"
                )
        if self._duplicates:
            gaps.append(
                "Several scrape targets export the same series ("
                + "; ".join(sorted(self._duplicates))
                + "): the first target's values are shown."
            )
        return gaps
