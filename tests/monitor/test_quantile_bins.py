"""Bins at the baseline's quantiles: the binned KS follows the exact two-sample KS."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy.stats import ks_2samp

from detectors.distribution import distance
from monitor.binning import REFERENCE_SAMPLE, SCORE_BINS, quantile_bins, quantile_edges

N = 20_000
Draw = Callable[[np.random.Generator, int, bool], np.ndarray]


def _beta_tails(rng: np.random.Generator, n: int, shifted: bool) -> np.ndarray:
    return rng.beta(0.08 if shifted else 0.05, 0.05, n)


def _piled(rng: np.random.Generator, n: int, shifted: bool) -> np.ndarray:
    """45% exactly 0.0, 45% exactly 1.0, 10% uniform (shifted: 30% / 60% / 10%)."""
    p = [0.3, 0.6, 0.1] if shifted else [0.45, 0.45, 0.1]
    kind = rng.choice(3, n, p=p)
    return np.where(kind == 0, 0.0, np.where(kind == 1, 1.0, rng.uniform(0, 1, n)))


def _int8(rng: np.random.Generator, n: int, shifted: bool) -> np.ndarray:
    x = rng.beta(2.4, 5, n) if shifted else rng.beta(2, 5, n)
    return np.round(x * 255) / 255


def _latency(rng: np.random.Generator, n: int, shifted: bool) -> np.ndarray:
    return rng.lognormal(np.log(40.0) + (0.15 if shifted else 0.0), 0.8, n)


SHAPES: dict[str, tuple[Draw, float, float]] = {
    "beta(0.05,0.05)": (_beta_tails, 0.0, 1.0),
    "piled at 0 and 1": (_piled, 0.0, 1.0),
    "int8 beta(2,5)": (_int8, 0.0, 1.0),
    "log-normal latency": (_latency, 0.0, np.inf),
}


def binned_and_exact_ks(shape: str, max_bins: int, seed: int) -> tuple[float, float]:
    """(binned KS on edges frozen from the first REFERENCE_SAMPLE baseline values, exact KS)."""
    draw, lower, upper = SHAPES[shape]
    rng = np.random.default_rng(seed)
    base, cand = draw(rng, N, False), draw(rng, N, True)
    edges = quantile_edges(base[:REFERENCE_SAMPLE], max_bins, lower, upper)
    assert len(edges) + 1 <= max_bins
    n_bins = len(edges) + 1
    hb = np.bincount(quantile_bins(edges, base), minlength=n_bins).astype(np.float64)
    hc = np.bincount(quantile_bins(edges, cand), minlength=n_bins).astype(np.float64)
    return distance("ks", hc, hb), float(ks_2samp(base, cand).statistic)


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("max_bins", sorted(set(SCORE_BINS.values())))
def test_binned_ks_is_within_0_01_of_the_exact_ks(shape: str, max_bins: int) -> None:
    """Baseline and shifted candidate of 20,000 each, 5 seeds: |binned - exact| <= 0.01."""
    for seed in range(5):
        binned, exact = binned_and_exact_ks(shape, max_bins, seed)
        assert exact > 0.03  # a real shift
        assert binned <= exact + 1e-12  # a binned sup is over fewer points
        assert exact - binned <= 0.01, (shape, max_bins, seed, binned, exact)


def test_a_point_mass_sits_alone_in_its_bin() -> None:
    """Exact 0.0 and 1.0 each get a bin holding nothing else; the edges fit the bin budget."""
    x = _piled(np.random.default_rng(1), REFERENCE_SAMPLE, False)
    edges = quantile_edges(x, 20, 0.0, 1.0)
    assert len(edges) <= 19 and np.all(np.diff(edges) > 0)
    assert quantile_bins(edges, [0.0]).tolist() == [0]
    assert quantile_bins(edges, [np.nextafter(0.0, 1.0)]).tolist() == [1]
    last = len(edges)
    assert quantile_bins(edges, [1.0]).tolist() == [last]
    assert quantile_bins(edges, [np.nextafter(1.0, 0.0)]).tolist() == [last - 1]


def test_constant_and_coarse_samples() -> None:
    """A constant sample, or one of a few values, still gives >= 2 bins, ties alone."""
    for x in ([0.0] * 100, [1.0] * 100, [0.5] * 100, [0.25, 0.5, 0.75] * 100):
        edges = quantile_edges(np.array(x), 50, 0.0, 1.0)
        assert 1 <= len(edges) <= 49
        values = sorted(set(x))
        bins = quantile_bins(edges, values)
        assert len(set(bins.tolist())) == len(values)


def test_wasserstein_with_bin_widths_follows_the_exact_distance() -> None:
    """On quantile bins the bin widths give W1 near scipy's; equal widths would not."""
    from scipy.stats import wasserstein_distance

    from monitor.binning import bin_widths

    rng = np.random.default_rng(7)
    base, cand = rng.beta(2, 5, N), np.clip(rng.beta(2, 5, N) + 0.05, 0, 1)
    edges = quantile_edges(base[:REFERENCE_SAMPLE], 50, 0.0, 1.0)
    n_bins = len(edges) + 1
    hb = np.bincount(quantile_bins(edges, base), minlength=n_bins).astype(np.float64)
    hc = np.bincount(quantile_bins(edges, cand), minlength=n_bins).astype(np.float64)
    exact = wasserstein_distance(base, cand)
    widths = bin_widths(edges, 0.0, 1.0)
    assert abs(distance("wasserstein", hc, hb, widths) - exact) <= 0.01
    assert abs(distance("wasserstein", hc, hb) - exact) > 0.02
