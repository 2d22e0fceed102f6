"""Time-uniform confidence bounds on a Bernoulli share: the beta-binomial mixture.

A check that passes a rollout gate must show the candidate *inside* its
tolerance, and a gate asks again and again (every minute of an analysis), so
the bound has to hold at every moment at once, not at one fixed sample size.
The beta-binomial mixture martingale does: for the true share ``p``,

    M_n(p) = B(a + x, b + n - x) / B(a, b) / (p^x (1 - p)^(n - x))

(``x`` successes in ``n`` trials, ``B`` the beta function) is a nonnegative
martingale with ``M_0 = 1``, so by Ville's inequality
``P(exists n: M_n(p) >= 1 / alpha) <= alpha``. The set ``{p : M_n(p) < 1/alpha}``
is an interval around ``x / n`` (``log M_n`` is convex in ``p`` and at most 0 at
``x / n``); its ends are the bounds, found by bisection.

References
----------
H. Robbins, "Statistical methods related to the law of the iterated
logarithm", Ann. Math. Statist. 41(5), 1397-1409, 1970 (mixture martingales).
S. R. Howard, A. Ramdas, J. McAuliffe and J. Sekhon, "Time-uniform,
nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2),
1055-1080, 2021 (Sec. 3 and Prop. 6, conjugate mixtures).
"""

from __future__ import annotations

import math

from scipy.special import betaln

__all__ = ["MIXTURE_PRIOR", "share_bounds"]

#: The mixing prior Beta(a, b): Jeffreys'. Chosen before any data, as the bound requires.
MIXTURE_PRIOR = (0.5, 0.5)
_STEPS = 60


def _log_mixture(x: float, n: float, p: float, log_mix: float) -> float:
    """``log M_n(p)``: the mixture likelihood ratio against the share ``p``.

    ``log_mix`` is ``log B(a + x, b + n - x) - log B(a, b)``, which does not depend on ``p``.
    """
    if p <= 0.0:
        return 0.0 if x == 0 else math.inf
    if p >= 1.0:
        return 0.0 if x == n else math.inf
    return log_mix - x * math.log(p) - (n - x) * math.log1p(-p)


def share_bounds(count: float, n: float, alpha: float) -> tuple[float, float]:
    """(lower, upper) ends of the ``1 - alpha`` confidence sequence for a share at (count, n).

    Valid at every ``n`` at once (time-uniform); with no trials it is (0, 1).

    >>> low, high = share_bounds(40, 10_000, 1e-3)     # 0.4% seen in 10,000
    >>> round(low, 4), round(high, 4)
    (0.0017, 0.0079)
    >>> share_bounds(0, 0, 0.01)
    (0.0, 1.0)
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n < 0 or count < 0 or count > n:
        raise ValueError(f"need 0 <= count <= n, got count={count}, n={n}")
    if n == 0:
        return 0.0, 1.0
    a, b = MIXTURE_PRIOR
    log_mix = float(betaln(a + count, b + n - count) - betaln(a, b))
    level = math.log(1.0 / alpha)
    mid = count / n
    return (
        _end(count, n, log_mix, level, mid, 0.0),
        _end(count, n, log_mix, level, mid, 1.0),
    )


def _end(x: float, n: float, log_mix: float, level: float, inside: float, outside: float) -> float:
    """Where ``log M`` reaches ``level`` between ``inside`` (in the set) and ``outside``."""
    if _log_mixture(x, n, outside, log_mix) < level:
        return outside
    for _ in range(_STEPS):
        mid = 0.5 * (inside + outside)
        if _log_mixture(x, n, mid, log_mix) < level:
            inside = mid
        else:
            outside = mid
    return outside
