"""Bins at the baseline's quantiles: the binned KS, Wasserstein and JS follow their exact values."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from functools import cache

import numpy as np
import pytest
from scipy import stats
from scipy.stats import ks_2samp, wasserstein_distance

from detectors.distribution import distance
from monitor.binning import (
    REFERENCE_SAMPLE,
    SCORE_BINS,
    bin_widths,
    quantile_bins,
    quantile_edges,
)

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


def _sixteenths(rng: np.random.Generator, n: int, shifted: bool) -> np.ndarray:
    """Baseline continuous Beta(2, 5); candidate rounded to sixteenths and offset by 0.02."""
    x = rng.beta(2, 5, n)
    return np.clip(np.round(x * 16) / 16 + 0.02, 0.0, 1.0) if shifted else x


def _int8_candidate(rng: np.random.Generator, n: int, shifted: bool) -> np.ndarray:
    """Baseline continuous Beta(2, 5); candidate offset by 0.03 and quantised to 8 bits."""
    x = rng.beta(2, 5, n)
    return np.round(np.clip(x + 0.03, 0.0, 1.0) * 255) / 255 if shifted else x


def _ends_candidate(rng: np.random.Generator, n: int, shifted: bool) -> np.ndarray:
    """Baseline continuous Beta(2, 5); the candidate puts 8% exactly at 0 and 5% at 1."""
    x = rng.beta(2, 5, n)
    if not shifted:
        return x
    u = rng.uniform(size=n)
    return np.where(u < 0.08, 0.0, np.where(u > 0.95, 1.0, x))


@cache
def _classifier_scores() -> tuple[np.ndarray, np.ndarray]:
    """P(digit is 9) of an MLP on load_digits' test half, and of a copy 60% magnitude-pruned.

    The test half (899 images) is scored 25 times with fresh pixel noise (sd 0.08 of the
    range) per version, so each version has 22,475 scores of its own, piled near 0.
    """
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, _ = train_test_split(
        x / 16.0, (y == 9).astype(int), test_size=0.5, random_state=0, stratify=y
    )
    model = MLPClassifier(hidden_layer_sizes=(32,), max_iter=400, random_state=0)
    with warnings.catch_warnings():  # 400 epochs fit it well (98% accuracy) for a shape test
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train, y_train)
    pruned = copy.deepcopy(model)
    cut = np.quantile(np.concatenate([np.abs(w).ravel() for w in model.coefs_]), 0.6)
    pruned.coefs_ = [np.where(np.abs(w) < cut, 0.0, w) for w in model.coefs_]
    rng = np.random.default_rng(0)
    scores = []
    for version in (model, pruned):
        inputs = np.repeat(x_test, 25, axis=0)
        inputs = np.clip(inputs + rng.normal(0.0, 0.08, inputs.shape), 0.0, 1.0)
        scores.append(version.predict_proba(inputs)[:, 1])
    return scores[0], scores[1]


def _classifier(rng: np.random.Generator, n: int, shifted: bool) -> np.ndarray:
    """The baseline or pruned classifier's scores, in a seeded random order."""
    scores = _classifier_scores()[1 if shifted else 0]
    return scores[rng.permutation(scores.size)[:n]]


#: Pairs whose candidate has atoms the baseline lacks, and a real classifier's scores.
PAIRS: dict[str, tuple[Draw, float, float]] = {
    "candidate in sixteenths +0.02": (_sixteenths, 0.0, 1.0),
    "candidate int8 +0.03": (_int8_candidate, 0.0, 1.0),
    "candidate atoms at 0 and 1": (_ends_candidate, 0.0, 1.0),
    "mlp vs 60% pruned": (_classifier, 0.0, 1.0),
}
SCORE_SHAPES = {k: v for k, v in {**SHAPES, **PAIRS}.items() if v[2] == 1.0}


def _binned(
    shape: str, max_bins: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(baseline, candidate, edges frozen from the first REFERENCE_SAMPLE baseline values,
    baseline histogram, candidate histogram)."""
    draw, lower, upper = {**SHAPES, **PAIRS}[shape]
    rng = np.random.default_rng(seed)
    base, cand = draw(rng, N, False), draw(rng, N, True)
    edges = quantile_edges(base[:REFERENCE_SAMPLE], max_bins, lower, upper)
    assert len(edges) + 1 <= max_bins
    n_bins = len(edges) + 1
    hb = np.bincount(quantile_bins(edges, base), minlength=n_bins).astype(np.float64)
    hc = np.bincount(quantile_bins(edges, cand), minlength=n_bins).astype(np.float64)
    return base, cand, edges, hb, hc


def binned_and_exact_ks(shape: str, max_bins: int, seed: int) -> tuple[float, float]:
    """(binned KS on edges frozen from the first REFERENCE_SAMPLE baseline values, exact KS)."""
    base, cand, _, hb, hc = _binned(shape, max_bins, seed)
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


@pytest.mark.parametrize("shape", sorted(PAIRS))
def test_binned_ks_is_within_0_01_of_the_exact_ks_when_only_the_candidate_has_atoms(
    shape: str,
) -> None:
    """Candidate atoms between the baseline's edges, or a real classifier: on the KS bins
    (at most SCORE_BINS["ks"]), 5 seeds, |binned - exact| <= 0.01."""
    for seed in range(5):
        binned, exact = binned_and_exact_ks(shape, SCORE_BINS["ks"], seed)
        assert exact > 0.03
        assert binned <= exact + 1e-12
        assert exact - binned <= 0.01, (shape, seed, binned, exact)


@pytest.mark.parametrize("shape", sorted(SCORE_SHAPES))
def test_binned_wasserstein_is_within_0_01_of_the_exact_distance(shape: str) -> None:
    """Every score shape, 5 seeds: W1 on the bins with their widths is within 0.01 of
    scipy's W1 on the raw samples (scores live in [0, 1], so no scaling)."""
    for seed in range(5):
        base, cand, edges, hb, hc = _binned(shape, SCORE_BINS["wasserstein"], seed)
        binned = distance("wasserstein", hc, hb, bin_widths(edges, 0.0, 1.0))
        exact = float(wasserstein_distance(base, cand))
        assert abs(binned - exact) <= 0.01, (shape, seed, binned, exact)


def _js(p: np.ndarray, q: np.ndarray) -> float:
    return distance("js", p, q)


def _population_js(shape: str) -> float:
    """The JS distance (base 2) between the populations, on their common fine support.

    Beta shapes: 20,000 cells of equal baseline probability (the JS over a partition rises
    to the JS of the densities as the partition refines; 20,000 cells are within 1e-4 of
    100,000). The int8 shape: its 256 levels, exactly. Piled: the two atoms and the uniform
    middle, exactly (the likelihood ratio is constant there).
    """
    if shape == "piled at 0 and 1":
        return _js(np.array([0.45, 0.1, 0.45]), np.array([0.3, 0.1, 0.6]))
    if shape == "int8 beta(2,5)":
        levels = np.arange(256) / 255
        cuts = np.concatenate([[-1.0], (levels[:-1] + levels[1:]) / 2, [2.0]])
        return _js(np.diff(stats.beta(2, 5).cdf(cuts)), np.diff(stats.beta(2.4, 5).cdf(cuts)))
    base, cand = stats.beta(0.05, 0.05), stats.beta(0.08, 0.05)
    cuts = np.concatenate([[0.0], base.ppf(np.arange(1, 20_000) / 20_000), [1.0]])
    return _js(np.diff(base.cdf(cuts)), np.diff(cand.cdf(cuts)))


@pytest.mark.parametrize("shape", ["beta(0.05,0.05)", "int8 beta(2,5)", "piled at 0 and 1"])
def test_binned_js_is_within_0_01_of_the_population_js(shape: str) -> None:
    """On the JS bins (at most SCORE_BINS["js"]) the plug-in JS of 20,000 scores each is
    within 0.01 of the populations' JS on their fine support, 5 seeds.

    Shapes whose candidate has atoms the baseline lacks have no such value: a continuous
    and an atomic distribution are mutually singular, JS distance 1 on the fine support.
    """
    exact = _population_js(shape)
    for seed in range(5):
        _, _, _, hb, hc = _binned(shape, SCORE_BINS["js"], seed)
        assert abs(_js(hc, hb) - exact) <= 0.01, (shape, seed, _js(hc, hb), exact)


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
