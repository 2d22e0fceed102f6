"""Rate detectors on an ESTIMATED baseline: delay against the fair reference, and coverage.

What it measures
----------------
The baseline's rate ``r`` is estimated from ``n`` baseline observations (20k,
100k, 1M); the candidate's rate is ``k`` times the TRUE upper tolerance
boundary ``B`` (``k`` = 1.1, 1.25, 1.5, 2, 3). Scenarios: a Bernoulli share of
4% with a +-25% relative tolerance (two-sided, ``B = 5%``), the same share
with an absolute ``max_increase`` of 0.01 (one-sided, ``B = 5%``), and a
Poisson rate of 0.04 actions per inference with +-25% (``B = 0.05``). Every
detector has ``arl0 = 1e5`` candidate observations (a two-sided detector gives
each side ``2e5``, as it does in production).

Side by side in one run, on the same baseline samples:

before
    ``RateShiftDetector(z=2)``: the normal-approximation boundary of releases
    before 0.3, default arms.
exact
    ``RateShiftDetector()`` as it ships: boundary at the exact one-sided
    confidence bound (``baseline_confidence = 0.9``, split over two sides),
    default arms (1.2 to 3).
exact+near
    the same with ``shifts=NEAR_BOUNDARY_SHIFTS`` (arms also at 1.05 and 1.1;
    its thresholds come from the same calibration, simulated on first use).
reference (matched)
    the best a detector with the same per-side promise can do: Page's CUSUM
    of the TRUE candidate rate against the boundary tested at the same
    per-side confidence (e.g. ``1.25 x UCB_95`` for +-25%, ``UCB_90 + 0.01``
    for the one-sided check) and the same per-side ARL0; threshold and delay
    computed exactly by the Markov chain of Brook & Evans (1972) on the
    integerised log-likelihood ratio (a zero-count step is ``-k`` units,
    ``k <= 4``; the ratio of the two steps is rounded by under 1.5%), the
    integer threshold the smallest whose ARL0 reaches the target. Where the
    candidate is at or inside that boundary (small baselines, ``k = 1.1``) no
    such detector may alarm faster than its ARL0, which is what is counted.
reference (brief)
    the same at ``1.25 x UCB_90`` and ARL0 1e5 whatever the sides, the
    one-sided reference of issue 10 (for a two-sided check it ignores that
    both sides spend the budget and the confidence).

Delay is candidate observations until the alarm, the change at the first
observation (the detector is ready: the baseline is given before), averaged
over ``--runs`` candidate streams per baseline sample and over ``--seeds``
baseline samples; runs are capped at ``CAP`` observations (counted as CAP,
reported). A Bernoulli or Poisson candidate stream is simulated in event
space and fed to ``update_many`` as (count, exposure) pairs: a run of
observations without events is one pair ``(0, g)``. Its log-likelihood ratio
is linear in (count, exposure) and only lowers the increase arms, so their
statistics after each event equal those of a trial-by-trial feed; the
benchmark checks this on explicit trial streams (``pair_check``: identical
alarm observation).

Coverage of the conditional guarantee: over ``--coverage-samples`` seeded
baseline samples per scenario and size, the share whose tested boundaries lie
at or beyond the true ones (upper >= true upper and lower <= true lower). It
implies the guarantee: the thresholds give in-control run length ``arl0`` to
a candidate exactly at the tested boundary, and a candidate at or inside the
true boundary is then at or inside the tested one, where every increase
arm's log-likelihood-ratio increments are stochastically smaller (and every
decrease arm's too, mirrored), so its run length is stochastically longer.

Reproduce
---------
From the repository root::

    python bench/estimated_baseline.py --json est.json      # defaults: about 8 minutes

References
----------
D. Brook and D. A. Evans, "An approach to the probability distribution of
CUSUM run length", Biometrika 59(3), 539-549, 1972.
W. A. Jensen et al., J. Quality Technology 38(4), 349-364, 2006.
A. Gandy and J. T. Kvaloy, Scand. J. Statistics 40(4), 647-668, 2013.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats
from scipy.linalg import solve_banded

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors import RateShiftDetector
from detectors.boundary import rate_confidence_bounds, tolerance_boundaries
from detectors.calibration import NEAR_BOUNDARY_SHIFTS, Family, llr_coefficients

SEED = 20261130
ARL0 = 1e5
CAP = 2_000_000
SIZES = (20_000, 100_000, 1_000_000)
MULTIPLES = (1.1, 1.25, 1.5, 2.0, 3.0)
VARIANTS = ("before", "exact", "exact+near")
CONFIDENCE = 0.9


@dataclass(frozen=True)
class Scenario:
    name: str
    family: Family
    rate: float
    relative: float | None = None
    increase: float | None = None

    @property
    def sides(self) -> int:
        return 2 if self.relative is not None else 1

    def tol(self) -> dict[str, float]:
        if self.relative is not None:
            return {"max_relative_change": self.relative}
        assert self.increase is not None
        return {"max_increase": self.increase}

    def upper(self, bound: float) -> float:
        """The upper boundary around a rate (or a bound of it)."""
        if self.relative is not None:
            return bound * (1 + self.relative)
        assert self.increase is not None
        return bound + self.increase

    def lower(self, bound: float) -> float | None:
        return bound * (1 - self.relative) if self.relative is not None else None


SCENARIOS = (
    Scenario("bernoulli 4% +-25%", "bernoulli", 0.04, relative=0.25),
    Scenario("bernoulli 4% +0.01", "bernoulli", 0.04, increase=0.01),
    Scenario("poisson 0.04 +-25%", "poisson", 0.04, relative=0.25),
)


def make(scn: Scenario, variant: str, count: float, n: float) -> RateShiftDetector:
    kwargs: dict[str, Any] = {"arl0": ARL0, **scn.tol()}
    if variant == "before":
        kwargs["z"] = 2.0
    if variant == "exact+near":
        kwargs["shifts"] = NEAR_BOUNDARY_SHIFTS
    det = RateShiftDetector(scn.family, **kwargs)
    det.update_reference(count, n)
    return det


# -- candidate streams in event space ----------------------------------------------------


def event_pairs(
    family: Family, rate: float, events: int, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(counts, exposures): each event as a pair (0, quiet observations before it), (c, 1)."""
    if family == "bernoulli":
        quiet = rng.geometric(rate, events) - 1.0
        hits = np.ones(events)
    else:
        quiet = rng.geometric(-math.expm1(-rate), events) - 1.0
        u = rng.uniform(math.exp(-rate), 1.0, events)  # zero-truncated Poisson by inversion
        hits = np.maximum(stats.poisson.ppf(u, rate), 1.0)
    counts = np.zeros(2 * events)
    expo = np.empty(2 * events)
    counts[1::2] = hits
    expo[0::2] = quiet
    expo[1::2] = 1.0
    return counts, expo


def delay(det: RateShiftDetector, family: Family, rate: float, rng: np.random.Generator) -> float:
    """Observations until the alarm (CAP if none by then), from a reset detector."""
    det.reset()
    seen = 0.0
    block = max(256, min(8192, int(4 * rate * 1e5)))
    while seen < CAP:
        counts, expo = event_pairs(family, rate, block, rng)
        det.update_many(counts, expo)
        if det.drift_detected:
            fed = det.observations - counts.size  # pairs before this block
            return min(seen + float(expo[: det.alarm_index - fed].sum()), CAP)
        seen += float(expo.sum())
    return float(CAP)


def pair_check(runs: int = 6) -> list[dict[str, float]]:
    """Alarm observation fed trial by trial and fed as event pairs: must be identical."""
    scn = SCENARIOS[0]
    out = []
    for i in range(runs):
        rng = np.random.default_rng([SEED, 99, i])
        det_a = make(scn, "exact", 800, 20_000)
        det_b = make(scn, "exact", 800, 20_000)
        trials = rng.random(400_000) < 0.075
        det_a.update_many(trials)
        ends = np.flatnonzero(trials)
        gaps = np.diff(np.concatenate(([-1], ends))) - 1.0
        counts = np.zeros(2 * ends.size)
        counts[1::2] = 1.0
        expo = np.ones(2 * ends.size)
        expo[0::2] = gaps
        det_b.update_many(counts, expo)
        via_pairs = float(expo[: det_b.alarm_index].sum()) if det_b.drift_detected else -1.0
        out.append({"trials": float(det_a.alarm_index), "pairs": via_pairs})
    return out


# -- the fair reference: the known-shift CUSUM as a Markov chain ---------------------------


def _steps(family: Family, r0: float, r1: float, max_k: int) -> tuple[int, int, float]:
    """(k, U, unit): a zero-count observation moves -k units, each event +U."""
    a, b = llr_coefficients(family, r0, r1)
    ratio = a / b
    k, up = min(
        ((k, max(1, round(ratio * k))) for k in range(1, max_k + 1)),
        key=lambda ku: abs(ku[1] / ku[0] - ratio),
    )
    return k, up, b / k


def _pmf(family: Family, rate: float) -> NDArray[np.float64]:
    if family == "bernoulli":
        return np.array([1.0 - rate, rate])
    top = int(stats.poisson.isf(1e-13, rate)) + 1
    return np.asarray(stats.poisson.pmf(np.arange(top + 1), rate), dtype=np.float64)


def chain_arl(pmf: NDArray[np.float64], k: int, up: int, top: int) -> float:
    """ARL from 0 of the integer CUSUM on 0..top: a count x steps by x * up - k (Brook & Evans)."""
    n = top + 1
    hi = max(len(pmf) - 1, 1) * up - k
    lo = k
    u_band = max(hi, 0)
    ab = np.zeros((lo + u_band + 1, n))
    ab[u_band, :] = 1.0
    i = np.arange(n)
    for x, p in enumerate(pmf):
        j = np.maximum(i - k + x * up, 0)
        ok = j <= top
        np.add.at(ab, (u_band + i[ok] - j[ok], j[ok]), -p)
    return float(solve_banded((lo, u_band), ab, np.ones(n), check_finite=False)[0])


def reference_delay(family: Family, r0: float, r1: float, arl0: float) -> float:
    """ARL1 at r1 of the CUSUM of r1 against r0, its threshold the lowest with ARL0 >= arl0.

    A candidate at or inside the tested boundary (``r1 <= r0``) is in control for any
    detector that keeps the promise: its run length there is at least ``arl0``, which is
    what is returned.
    """
    if r1 <= r0:
        return arl0
    k, up, unit = _steps(family, r0, r1, 4)
    p0, p1 = _pmf(family, r0), _pmf(family, r1)
    # Secant steps on log ARL0 ~ log C + top * unit from Lorden's bound (ARL0 >= exp(h)),
    # then a bisection on a bracket around the result.
    top = math.ceil(math.log(arl0) / unit)
    for _ in range(4):
        step = round((math.log(arl0) - math.log(chain_arl(p0, k, up, top))) / unit)
        top = max(top + step, 1)
        if abs(step) <= 2:
            break
    width = 4
    lo, hi = max(top - width, 0), top + width
    while lo > 0 and chain_arl(p0, k, up, lo) >= arl0:
        lo, width = max(lo - 2 * width, 0), 2 * width
    while chain_arl(p0, k, up, hi) < arl0:
        hi, width = hi + 2 * width, 2 * width
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if chain_arl(p0, k, up, mid) < arl0 else (lo, mid)
    return min(chain_arl(p1, k, up, hi), float(CAP))


# -- one scenario -------------------------------------------------------------------------


def baseline_counts(scn: Scenario, n: int, samples: int, stream: int) -> NDArray[np.float64]:
    rng = np.random.default_rng([SEED, stream, n])
    if scn.family == "bernoulli":
        return rng.binomial(n, scn.rate, samples).astype(np.float64)
    return rng.poisson(scn.rate * n, samples).astype(np.float64)


def coverage(scn: Scenario, n: int, samples: int) -> dict[str, float]:
    """Share of baseline samples whose tested boundaries lie at or beyond the true ones."""
    true_up, true_down = scn.upper(scn.rate), scn.lower(scn.rate)
    out: dict[str, float] = {}
    for name, z in (("exact", None), ("before", 2.0)):
        hits = 0
        for count in baseline_counts(scn, n, samples, stream=2):
            up, down = tolerance_boundaries(
                scn.family, count, n, confidence=CONFIDENCE, z=z, **scn.tol()
            )
            ok_up = up is None or up >= true_up
            ok_down = true_down is None or down is None or down <= true_down
            hits += ok_up and ok_down
        out[name] = float(hits) / samples
    return out


def run_scenario(args: tuple[Scenario, int, int, int]) -> dict[str, Any]:
    scn, seeds, runs, cov_samples = args
    t0 = time.perf_counter()
    side_arl0 = ARL0 * scn.sides
    alpha_side = (1 - CONFIDENCE) / scn.sides
    cells = []
    for n in SIZES:
        counts = baseline_counts(scn, n, seeds, stream=1)
        for m in MULTIPLES:
            p1 = m * scn.upper(scn.rate)
            delays: dict[str, list[float]] = {v: [] for v in VARIANTS}
            ref_m, ref_b = [], []
            for s, count in enumerate(counts):
                _, ucb = rate_confidence_bounds(scn.family, count, float(n), alpha_side)
                _, ucb90 = rate_confidence_bounds(scn.family, count, float(n), 1 - CONFIDENCE)
                ref_m.append(reference_delay(scn.family, scn.upper(ucb), p1, side_arl0))
                ref_b.append(reference_delay(scn.family, scn.upper(ucb90), p1, ARL0))
                for v in VARIANTS:
                    det = make(scn, v, count, n)
                    rng = np.random.default_rng([SEED, 3, n, int(m * 100), s])
                    delays[v] += [delay(det, scn.family, p1, rng) for _ in range(runs)]
            means = {v: float(np.mean(d)) for v, d in delays.items()}
            cells.append(
                {
                    "baseline_n": n,
                    "multiple": m,
                    "candidate_rate": p1,
                    "delay": means,
                    "censored": {v: int(np.sum(np.asarray(d) >= CAP)) for v, d in delays.items()},
                    "runs": len(delays["exact"]),
                    "reference_matched": float(np.mean(ref_m)),
                    "reference_brief": float(np.mean(ref_b)),
                    "ratio_matched": {v: means[v] / float(np.mean(ref_m)) for v in VARIANTS},
                    "ratio_brief": {v: means[v] / float(np.mean(ref_b)) for v in VARIANTS},
                }
            )
    cov = {str(n): coverage(scn, n, cov_samples) for n in SIZES}
    return {
        "scenario": asdict(scn),
        "cells": cells,
        "coverage": cov,
        "seconds": time.perf_counter() - t0,
    }


# -- report -------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "pass" if ok else "**fail**"


def tables(result: dict[str, Any]) -> str:
    lines = [
        "| scenario | baseline n | k x boundary | reference (matched) | before | exact "
        "| exact+near | ratio before | ratio exact | ratio exact+near "
        "| ratio exact+near, brief ref |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    fmt: Callable[[float], str] = lambda x: f"{x:,.0f}"  # noqa: E731
    for sc in result["scenarios"]:
        for c in sc["cells"]:
            d, r, b = c["delay"], c["ratio_matched"], c["ratio_brief"]
            lines.append(
                f"| {sc['scenario']['name']} | {c['baseline_n']:,} | {c['multiple']} "
                f"| {fmt(c['reference_matched'])} | {fmt(d['before'])} | {fmt(d['exact'])} "
                f"| {fmt(d['exact+near'])} | {r['before']:.2f} | {r['exact']:.2f} "
                f"| {r['exact+near']:.2f} | {b['exact+near']:.2f} |"
            )
    lines += [
        "",
        "| scenario | baseline n | coverage exact (se) | coverage before (z=2) "
        "| goal >= 0.90 (within 2 se) |",
    ]
    lines.append("| --- | ---: | ---: | ---: | --- |")
    samples = result["coverage_samples"]
    for sc in result["scenarios"]:
        for n, cov in sc["coverage"].items():
            se = math.sqrt(CONFIDENCE * (1 - CONFIDENCE) / samples)
            lines.append(
                f"| {sc['scenario']['name']} | {int(n):,} | {cov['exact']:.3f} ({se:.3f}) "
                f"| {cov['before']:.3f} | {verdict(cov['exact'] >= CONFIDENCE - 2 * se)} |"
            )
    lines += [
        "",
        "| mean delay ratio (matched reference) | all cells | without k = 1.1 | k = 1.1 only "
        "| goal <= 1.3 (all cells) |",
    ]
    lines.append("| --- | ---: | ---: | ---: | --- |")
    for v in VARIANTS:
        cells = [c for s in result["scenarios"] for c in s["cells"]]
        rest = [c["ratio_matched"][v] for c in cells if c["multiple"] != 1.1]
        near = [c["ratio_matched"][v] for c in cells if c["multiple"] == 1.1]
        x = result["mean_ratio"][v]
        lines.append(
            f"| {v} | {x:.2f} | {np.mean(rest):.2f} | {np.mean(near):.2f} | {verdict(x <= 1.3)} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=8, help="baseline samples per cell")
    ap.add_argument("--runs", type=int, default=8, help="candidate streams per baseline sample")
    ap.add_argument("--coverage-samples", type=int, default=20_000)
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    jobs = [(scn, args.seeds, args.runs, args.coverage_samples) for scn in SCENARIOS]
    with ProcessPoolExecutor(max_workers=2) as pool:
        scenarios = list(pool.map(run_scenario, jobs))
    mean_ratio = {
        v: float(np.mean([c["ratio_matched"][v] for s in scenarios for c in s["cells"]]))
        for v in VARIANTS
    }
    result = {
        "machine": f"{platform.machine()} {platform.processor()} {platform.node()}",
        "command": " ".join(["python", "bench/estimated_baseline.py", *(argv or sys.argv[1:])]),
        "arl0": ARL0,
        "cap": CAP,
        "seeds": args.seeds,
        "runs": args.runs,
        "coverage_samples": args.coverage_samples,
        "pair_check": pair_check(),
        "scenarios": scenarios,
        "mean_ratio": mean_ratio,
        "seconds": time.perf_counter() - t0,
    }
    print(tables(result))
    print(f"\npair check (alarm observation, trials vs pairs): {result['pair_check']}")
    print(f"{result['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
