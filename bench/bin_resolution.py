"""How far below the exact two-sample KS the binned KS falls, by bin count and reference sample.

The candidate has point masses the baseline lacks, the case where bins at the
baseline's quantiles lose most: (a) a continuous Beta(2, 5) baseline against
the same scores rounded to sixteenths plus 0.02 (20,000 each, seeds 0-4), and
(b) the demo simulator's candidate with ``score_shift=0.02`` at 60,000
requests (seeds 71-76, as in ``tests/monitor/test_checks_replay.py``). Edges
are frozen from the first ``reference`` baseline values
(:func:`monitor.binning.quantile_edges`); the figure is the largest
``ks_2samp - binned KS`` over the seeds.

Run: ``python bench/bin_resolution.py [--bins 50,100,128,200] [--reference 2000,4000]``
(about 15 s).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.stats import ks_2samp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detectors.distribution import distance
from monitor.binning import quantile_bins, quantile_edges
from monitor.demo.simulator import Scenario, write_jsonl


def shortfall(base: NDArray[np.float64], cand: NDArray[np.float64], bins: int, ref: int) -> float:
    edges = quantile_edges(base[:ref], bins, 0.0, 1.0)
    k = len(edges) + 1
    hb = np.bincount(quantile_bins(edges, base), minlength=k).astype(np.float64)
    hc = np.bincount(quantile_bins(edges, cand), minlength=k).astype(np.float64)
    return float(ks_2samp(base, cand).statistic) - distance("ks", hc, hb)


def sixteenths(seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    base, cand = rng.beta(2, 5, 20_000), rng.beta(2, 5, 20_000)
    return base, np.clip(np.round(cand * 16) / 16 + 0.02, 0.0, 1.0)


def demo(seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    scenario = replace(Scenario.identical(seed=seed, requests_per_second=100.0), score_shift=0.02)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        write_jsonl(path, scenario, 60_000)
        scores: dict[str, list[float]] = {}
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event.get("kind") == "inference" and "score" in event:
                scores.setdefault(event["version"], []).append(event["score"])
    return np.array(scores["v7-fp32"]), np.array(scores["v7-int8"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bins", default="50,100,128,200")
    ap.add_argument("--reference", default="2000,4000")
    args = ap.parse_args()
    pairs = {
        "sixteenths + 0.02 (Beta)": [sixteenths(s) for s in range(5)],
        "demo candidate": [demo(s) for s in range(71, 77)],
    }
    print("| most bins | reference sample | " + " | ".join(pairs) + " |")
    print("| ---: | ---: |" + " ---: |" * len(pairs))
    for bins in (int(b) for b in args.bins.split(",")):
        for ref in (int(r) for r in args.reference.split(",")):
            worst = [max(shortfall(b, c, bins, ref) for b, c in runs) for runs in pairs.values()]
            print(f"| {bins} | {ref:,} | " + " | ".join(f"{w:.4f}" for w in worst) + " |")


if __name__ == "__main__":
    main()
