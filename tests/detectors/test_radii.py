"""Confidence radii: the JS radius holds with its stated probability and beats sqrt(TV)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.distribution import DistributionShiftDetector, distance
from detectors.radii import JS_PER_KL, js_radius, js_radius_lin, kl_radius

#: True distributions over their bins: flat, geometric (skewed), and a few heavy bins
#: among many almost empty ones (where the empirical distribution misses bins).
TRUTHS = {
    "flat 32": np.full(32, 1 / 32),
    "geometric 32": 0.8 ** np.arange(32) / (0.8 ** np.arange(32)).sum(),
    "sparse 200": np.concatenate([[0.3, 0.3, 0.2], np.full(197, 0.2 / 197)]),
}


def test_js_divergence_is_at_most_half_the_kl_per_generator() -> None:
    """f_JS(t) <= (ln 2 / 2) (t ln t - t + 1) on a fine grid of t, with equality as t -> 0."""
    t = np.concatenate([np.linspace(0.0, 0.999, 100_000), np.geomspace(1.001, 1e6, 100_000)])
    with np.errstate(divide="ignore", invalid="ignore"):
        f_js = 0.5 * (np.where(t > 0, t * np.log(2 * t / (1 + t)), 0.0) + np.log(2 / (1 + t)))
        f_kl = np.where(t > 0, t * np.log(t), 0.0) - t + 1
    assert np.all(f_js <= JS_PER_KL * f_kl * (1 + 1e-12))
    assert f_js[0] == pytest.approx(JS_PER_KL * f_kl[0])


def test_kl_radius_solves_agrawals_tail_bound() -> None:
    """At the radius e the bound exp(-n e) (e_ n e / (k - 1))^(k - 1) equals alpha."""
    for n, k, alpha in [(200, 2, 0.1), (10_000, 32, 1e-8), (10**7, 200, 1e-12)]:
        eps = kl_radius(n, k, alpha)
        assert eps > (k - 1) / n
        log_bound = -n * eps + (k - 1) * (1 + math.log(n * eps / (k - 1)))
        assert log_bound == pytest.approx(math.log(alpha), rel=1e-9)


@pytest.mark.parametrize("truth", sorted(TRUTHS))
@pytest.mark.parametrize("n", [200, 2_000, 20_000])
def test_js_radius_covers_with_its_stated_probability(truth: str, n: int) -> None:
    """2,000 seeded samples: d_JS(empirical, truth) exceeds js_radius(alpha=0.05) in at most
    5% of them (the bound is conservative: in practice none)."""
    p = TRUTHS[truth]
    rng = np.random.default_rng(n + len(p))
    counts = rng.multinomial(n, p, size=2_000).astype(np.float64)
    d = np.array([distance("js", row, p) for row in counts])
    r = js_radius(n, len(p), 0.05)
    assert np.mean(d > r) <= 0.05
    # The radius is not vacuous: within 4x the largest deviation seen.
    assert r < 4 * d.max()


def test_two_sample_bound_covers_the_true_distance() -> None:
    """Candidate and baseline drawn from distributions 0.1 apart: the interval
    d_hat -/+ (r_c + r_b) at 2.5% per sample holds the true JS in >= 95% of 2,000 runs."""
    p = TRUTHS["geometric 32"]
    q = np.roll(p, 1) * 0.3 + p * 0.7
    truth = distance("js", q, p)
    rng = np.random.default_rng(11)
    n_c, n_b = 3_000, 10_000
    cand = rng.multinomial(n_c, q, size=2_000).astype(np.float64)
    base = rng.multinomial(n_b, p, size=2_000).astype(np.float64)
    d_hat = np.array([distance("js", c, b) for c, b in zip(cand, base, strict=True)])
    r = js_radius(n_c, 32, 0.025) + js_radius(n_b, 32, 0.025)
    assert 0.05 < truth < 0.2
    assert np.mean(np.abs(d_hat - truth) > r) <= 0.05


@pytest.mark.parametrize("arl0", [1e4, 1e6, 1e9])
@pytest.mark.parametrize("k", [16, 20, 32, 50])
def test_js_radius_is_smaller_than_sqrt_tv_where_it_matters(arl0: float, k: int) -> None:
    """At the detector's per-evaluation alpha, from 200 to 10^7 observations, the new radius
    is below the old one, by 2x or more from 2,000 observations on."""
    det = DistributionShiftDetector("js", 0.1, k, arl0)
    for n in np.geomspace(200, 1e7, 30).astype(int):
        alpha = det._alpha(int(n))
        new, old = js_radius(int(n), k, alpha), js_radius_lin(int(n), k, alpha)
        assert new < old
        if n >= 2_000:
            assert new <= old / 2
