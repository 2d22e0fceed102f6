"""False alarms and detection delay of the distribution detector, against a known-shift CUSUM.

What it measures (issue 10)
---------------------------
For each distance (``ks``, ``wasserstein``, ``js`` on score bins frozen at the
baseline's quantiles, ``tv`` on 16 tool categories) a candidate stream of bin
indices is fed to ``DistributionShiftDetector(distance, tol, n_bins,
arl0=target)``, whose baseline histogram is given exactly
(``update_reference_counts(1e9 x p0)``, as the rate benchmark gives its
baseline rate). Distributions on the way from ``p0`` to a direction ``q``
are mixtures ``p_t = (1 - t) p0 + t q``; KS, Wasserstein and TV are linear in
``t``, JS is monotone and ``t`` is bisected. ``p_tol`` is the mixture at
exactly the tolerance (the boundary: the worst in-tolerance candidate), and
``p_1.5``, ``p_2``, ``p_3`` are at 1.5x, 2x and 3x the tolerance.

detector ARL0
    Mean run length with the candidate at ``p_tol``. The detector evaluates
    only on its grid of candidate counts (16 points per doubling), so runs
    are simulated exactly by drawing the multinomial counts between grid
    points; runs are censored at ``--cap`` x the target, and ARL0 is then
    reported as a lower bound (``>=``, the censored mean).
detector delay
    Mean run length with the candidate at ``p_k`` from the first observation
    (the zero-delay start), quantised to the grid (at most 1/16 late).
oracle
    Page's (1954) CUSUM on the exact log-likelihood ratio ``log(p_k / p_tol)``
    of each bin, which knows the post-change distribution; its threshold is
    bisected by simulation (common random numbers) to ARL0 = target at
    ``p_tol``; its delay is the mean run length from 0 at ``p_k``.
scaled radius
    The radii multiplied by ``lambda`` (bisected so the ARL0 at ``p_tol`` is
    the target), to separate what the distribution-free bound costs from
    what not knowing the alternative costs. Not a production setting: the
    boundary is a set, and ``lambda`` fits one point of it.

Run: ``python bench/distribution_delay.py [--seeds 0,1,2] [--runs 400] [--target 1e4]
[--json out.json]``. Each seed is a full replication; tables give the median over
seeds and the range.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detectors.distribution import DistributionShiftDetector, distance
from monitor.binning import (
    REFERENCE_SAMPLE,
    SCORE_BINS,
    bin_widths,
    quantile_bins,
    quantile_edges,
)

Array = NDArray[np.float64]
TOLERANCE = {"ks": 0.1, "wasserstein": 0.04, "js": 0.1, "tv": 0.05}
SHIFTS = (1.5, 2.0, 3.0)


# -- the bins and the distributions on them ----------------------------------------------
def setting(kind: str) -> tuple[Array, Array, list[float] | None]:
    """(p0, direction q, bin widths) for one distance, from seeded populations."""
    rng = np.random.default_rng(12345)
    if kind == "tv":
        p0 = np.array([0.4, 0.2, 0.12, 0.08] + [0.2 / 12] * 12)
        q = np.roll(p0, 3)
        return p0, q, None
    base = rng.beta(2, 5, 2_000_000)
    edges = quantile_edges(base[:REFERENCE_SAMPLE], SCORE_BINS[kind], 0.0, 1.0)
    k = len(edges) + 1
    p0 = np.bincount(quantile_bins(edges, base), minlength=k) / base.size
    # The direction: scores rounded to sixteenths and moved up by 0.15 (a quantised,
    # recalibrated candidate), far enough for 3x every tolerance.
    moved = np.clip(np.round(rng.beta(2, 5, 2_000_000) * 16) / 16 + 0.15, 0.0, 1.0)
    q = np.bincount(quantile_bins(edges, moved), minlength=k) / moved.size
    widths = bin_widths(edges, 0.0, 1.0) if kind == "wasserstein" else None
    return p0, q, widths


def at_distance(kind: str, p0: Array, q: Array, d: float, widths: list[float] | None) -> Array:
    """The mixture (1 - t) p0 + t q at distance exactly ``d`` from p0."""
    full = distance(kind, q, p0, widths)  # type: ignore[arg-type]
    if not full > d:
        raise ValueError(f"{kind}: direction only {full:.3f} away, need > {d}")
    lo, hi = 0.0, 1.0
    for _ in range(60):
        t = 0.5 * (lo + hi)
        if distance(kind, (1 - t) * p0 + t * q, p0, widths) < d:  # type: ignore[arg-type]
            lo = t
        else:
            hi = t
    return (1 - hi) * p0 + hi * q


# -- vectorised distances over runs (rows), checked against the detector's ---------------
def distances(kind: str, counts: Array, p0: Array, widths: list[float] | None) -> Array:
    p = counts / counts.sum(axis=1, keepdims=True)
    if kind == "tv":
        return 0.5 * np.abs(p - p0).sum(axis=1)
    if kind == "js":
        m = 0.5 * (p + p0)
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(p > 0, p * np.log2(p / m), 0.0).sum(axis=1)
            b = np.where(p0 > 0, p0 * np.log2(p0 / m), 0.0).sum(axis=1)
        return np.sqrt(np.maximum(0.0, 0.5 * (a + b)))
    gap = np.abs(np.cumsum(p, axis=1) - np.cumsum(p0))
    if kind == "ks":
        return gap.max(axis=1)
    w = np.asarray(widths)
    return (gap * w).sum(axis=1) / w.sum()


# -- the detector, simulated exactly on its evaluation grid -------------------------------
def grid_and_radii(det: DistributionShiftDetector, cap: int) -> tuple[list[int], Array]:
    """The detector's evaluation points up to ``cap`` and the summed radius at each."""
    points, n = [], det.min_observations
    while n <= cap:
        points.append(n)
        n = det._grid_after(n)
    n_ref = int(det.reference_exposure)
    radii = np.array(
        [det.radius(m, det._alpha(m)) + det.radius(n_ref, det._alpha(m)) for m in points]
    )
    return points, radii


def detector_paths(
    kind: str,
    p: Array,
    p0: Array,
    widths: list[float] | None,
    points: list[int],
    runs: int,
    rng: np.random.Generator,
) -> Array:
    """Plug-in distance at every grid point of every run (runs x points)."""
    counts = np.zeros((runs, p.size))
    out = np.empty((runs, len(points)))
    prev = 0
    for j, n in enumerate(points):
        counts += rng.multinomial(n - prev, p, size=runs)
        prev = n
        out[:, j] = distances(kind, counts, p0, widths)
    return out


def run_lengths(paths: Array, radii: Array, points: list[int], tol: float, scale: float) -> Array:
    """First grid point where the bound exceeds ``tol`` (censored runs: the last point)."""
    alarm = paths - scale * radii > tol
    hit = alarm.any(axis=1)
    first = np.where(hit, alarm.argmax(axis=1), len(points) - 1)
    return np.asarray(points, dtype=np.float64)[first], hit


# -- the oracle CUSUM ----------------------------------------------------------------------
def alias_table(p: Array) -> tuple[Array, NDArray[np.int64]]:
    """Walker's alias table of ``p`` (Vose 1991): exact sampling in O(1) per draw."""
    k = p.size
    scaled = p * k
    prob, alias = np.ones(k), np.arange(k)
    small = [i for i in range(k) if scaled[i] < 1.0]
    large = [i for i in range(k) if scaled[i] >= 1.0]
    while small and large:
        s_, l_ = small.pop(), large.pop()
        prob[s_], alias[s_] = scaled[s_], l_
        scaled[l_] -= 1.0 - scaled[s_]
        (small if scaled[l_] < 1.0 else large).append(l_)
    return prob, alias


def draw(
    table: tuple[Array, NDArray[np.int64]], shape: tuple[int, int], rng: np.random.Generator
) -> NDArray[np.int64]:
    """Bins drawn from an alias table."""
    prob, alias = table
    i = rng.integers(0, prob.size, shape)
    return np.where(rng.random(shape) < prob[i], i, alias[i])


def cusum_run_lengths(llr: Array, p: Array, h: float, runs: int, cap: int, seed: int) -> Array:
    """Run lengths of max(0, S + llr[x]) >= h with x ~ p (censored at ``cap``)."""
    rng = np.random.default_rng(seed)
    table = alias_table(p)
    s = np.zeros(runs)
    stop = np.full(runs, float(cap))
    alive = np.ones(runs, dtype=bool)
    n, block = 0, 512
    while alive.any() and n < cap:
        steps = llr[draw(table, (block, int(alive.sum())), rng)]
        idx = np.flatnonzero(alive)
        s_a = s[idx]
        done = np.zeros(idx.size, dtype=bool)
        for i in range(block):
            s_a = np.maximum(0.0, s_a + steps[i])
            new = (s_a >= h) & ~done
            stop[idx[new]] = n + i + 1
            done |= new
        s[idx] = s_a
        alive[idx[done]] = False
        n += block
    return stop


def calibrate_cusum(llr: Array, p_tol: Array, target: float, runs: int, seed: int) -> float:
    """Threshold h whose ARL0 at ``p_tol`` is the target (bisection on log h, common numbers)."""
    lo, hi = 0.5, 5.0 * math.log(target)
    for _ in range(11):
        h = math.sqrt(lo * hi)
        arl = cusum_run_lengths(llr, p_tol, h, runs, int(30 * target), seed).mean()
        if arl < target:
            lo = h
        else:
            hi = h
    return math.sqrt(lo * hi)


# -- one replication -----------------------------------------------------------------------
def replicate(kind: str, seed: int, runs: int, target: float, cap_factor: float) -> dict[str, Any]:
    p0, q, widths = setting(kind)
    tol = TOLERANCE[kind]
    det = DistributionShiftDetector(kind, tol, p0.size, arl0=target, widths=widths)  # type: ignore[arg-type]
    det.update_reference_counts(np.round(p0 * 1e9).astype(np.int64))
    # The vectorised distance is the detector's, on a few rows.
    check = np.random.default_rng(seed).multinomial(500, p0, size=3).astype(np.float64)
    ref = np.round(p0 * 1e9)
    for row, got in zip(check, distances(kind, check, ref / ref.sum(), widths), strict=True):
        assert abs(det.distance_between(row) - got) < 1e-9
    p_tol = at_distance(kind, p0, q, tol, widths)
    cap = int(cap_factor * target)
    points, radii = grid_and_radii(det, cap)
    rng = np.random.default_rng([seed, 1])
    null = detector_paths(kind, p_tol, p0, widths, points, runs, rng)
    rl0, hit0 = run_lengths(null, radii, points, tol, 1.0)
    # The radius scale giving ARL0 = target at p_tol (censored mean, bisection).
    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if run_lengths(null, radii, points, tol, mid)[0].mean() < target:
            lo = mid
        else:
            hi = mid
    scale = hi
    rl0_scaled = run_lengths(null, radii, points, tol, scale)[0]
    out: dict[str, Any] = {
        "kind": kind,
        "seed": seed,
        "bins": int(p0.size),
        "tolerance": tol,
        "arl0": float(rl0.mean()),
        "arl0_censored": int((~hit0).sum()),
        "radius_scale": scale,
        "arl0_scaled": float(rl0_scaled.mean()),
        "shifts": {},
    }
    for k in SHIFTS:
        p1 = at_distance(kind, p0, q, k * tol, widths)
        paths = detector_paths(
            kind, p1, p0, widths, points, runs, np.random.default_rng([seed, 2, int(10 * k)])
        )
        rl1, hit1 = run_lengths(paths, radii, points, tol, 1.0)
        rl1_scaled = run_lengths(paths, radii, points, tol, scale)[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            llr = np.where(p1 > 0, np.log(p1 / p_tol), 0.0)  # a bin empty under both is never drawn
        h = calibrate_cusum(llr, p_tol, target, runs, seed + 7)
        oracle0 = cusum_run_lengths(llr, p_tol, h, runs, int(30 * target), seed + 99).mean()
        oracle1 = cusum_run_lengths(llr, p1, h, runs, int(30 * target), seed + 5).mean()
        out["shifts"][str(k)] = {
            "delay": float(rl1.mean()),
            "delay_censored": int((~hit1).sum()),
            "delay_scaled": float(rl1_scaled.mean()),
            "oracle_h": h,
            "oracle_arl0": float(oracle0),
            "oracle_delay": float(oracle1),
        }
    return out


def _median(xs: list[float]) -> str:
    return f"{np.median(xs):,.4g} ({min(xs):,.4g}-{max(xs):,.4g})"


def report(results: list[dict[str, Any]], target: float) -> str:
    lines = [
        f"target ARL0 {target:g}; median over seeds (range)",
        "",
        "| distance | bins | tol | ARL0 at tol / target | goal 0.9-1.5 "
        "| radius scale for ARL0 = target |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for kind in dict.fromkeys(r["kind"] for r in results):
        rows = [r for r in results if r["kind"] == kind]
        ratio = [r["arl0"] / target for r in rows]
        censored = sum(r["arl0_censored"] for r in rows)
        lower = ">= " if censored else ""
        verdict = "pass" if 0.9 <= np.median(ratio) <= 1.5 else "fail"
        lines.append(
            f"| {kind} | {rows[0]['bins']} | {rows[0]['tolerance']} | {lower}{_median(ratio)}"
            f" ({censored} runs censored) | {verdict} |"
            f" {_median([r['radius_scale'] for r in rows])} |"
        )
    lines += [
        "",
        "| distance | shift | oracle ARL0 / target | oracle delay | detector delay | ratio "
        "| goal <= 1.5 | scaled-radius delay | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for kind in dict.fromkeys(r["kind"] for r in results):
        rows = [r for r in results if r["kind"] == kind]
        for k in SHIFTS:
            s = [r["shifts"][str(k)] for r in rows]
            ratio = [x["delay"] / x["oracle_delay"] for x in s]
            scaled = [x["delay_scaled"] / x["oracle_delay"] for x in s]
            verdict = "pass" if np.median(ratio) <= 1.5 else "fail"
            lines.append(
                f"| {kind} | {k}x | {_median([x['oracle_arl0'] / target for x in s])} |"
                f" {_median([x['oracle_delay'] for x in s])} | {_median([x['delay'] for x in s])} |"
                f" {_median(ratio)} | {verdict} |"
                f" {_median([x['delay_scaled'] for x in s])} | {_median(scaled)} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, one replication each")
    ap.add_argument("--runs", type=int, default=400, help="runs per configuration and seed")
    ap.add_argument(
        "--target", type=float, default=1e4, help="target ARL0 (candidate observations)"
    )
    ap.add_argument("--cap", type=float, default=50.0, help="censor detector runs at cap x target")
    ap.add_argument("--kinds", default=",".join(TOLERANCE), help="distances to run")
    ap.add_argument("--json", type=Path, help="write the raw results here")
    args = ap.parse_args(argv)
    started = time.time()
    results = []
    for kind in args.kinds.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            results.append(replicate(kind, seed, args.runs, args.target, args.cap))
            print(f"{kind} seed {seed} done at {time.time() - started:.0f} s", file=sys.stderr)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"commit {commit}, {platform.python_version()}, numpy {np.__version__},"
        f" {time.time() - started:.0f} s"
    )
    print(report(results, args.target))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"args": vars(args) | {"json": str(args.json)}, "results": results}, indent=1
            )
        )


if __name__ == "__main__":
    main()
