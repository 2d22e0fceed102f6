"""Confidence radii of an empirical distribution around its truth, one per distance.

Each function returns ``r`` such that, for ``n`` independent observations
from a fixed distribution ``p`` over ``k`` ordered bins (or categories), the
distance between the empirical distribution ``p_n`` and ``p`` exceeds ``r``
with probability at most ``alpha``. :class:`~detectors.DistributionShiftDetector`
subtracts one radius per sample from the plug-in distance between the two
histograms (the triangle inequality of each metric).

References
----------
P. Massart, "The tight constant in the Dvoretzky-Kiefer-Wolfowitz
inequality", Ann. Probab. 18(3), 1269-1283, 1990.
T. Weissman, E. Ordentlich, G. Seroussi, S. Verdu, M. J. Weinberger,
"Inequalities for the L1 deviation of the empirical distribution",
HP Labs HPL-2003-97, 2003 (Theorem 2.1).
R. Agrawal, "Finite-sample concentration of the multinomial in relative
entropy", IEEE Trans. Inf. Theory 66(10), 6297-6302, 2020.
D. M. Endres, J. E. Schindelin, "A new metric for probability
distributions", IEEE Trans. Inf. Theory 49(7), 1858-1860, 2003.
J. Lin, "Divergence measures based on the Shannon entropy", IEEE Trans.
Inf. Theory 37(1), 145-151, 1991.
"""

from __future__ import annotations

import math

__all__ = ["JS_PER_KL", "dkw_radius", "js_radius", "js_radius_lin", "kl_radius", "tv_radius"]

#: ``sup_t f_JS(t) / (t ln t - t + 1)`` (reached as ``t -> 0``): JSD (nats) <= this x KL.
JS_PER_KL = math.log(2.0) / 2.0


def _check(n: int, k: int, alpha: float) -> None:
    if k < 2:
        raise ValueError(f"need k >= 2 bins, got {k}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def dkw_radius(n: int, alpha: float) -> float:
    """Radius of ``sup_x |F_n(x) - F(x)|`` (DKW with Massart's constant).

    ``P(sup |F_n - F| > e) <= 2 exp(-2 n e^2)`` (Massart 1990), whatever the
    distribution, so the radius needs no bin count. On [0, 1] the
    Wasserstein-1 distance is at most this sup, so it serves ``wasserstein``
    too.

    >>> round(dkw_radius(10_000, 1e-6), 4)
    0.0269
    """
    if n <= 0:
        return math.inf
    return math.sqrt(math.log(2.0 / alpha) / (2.0 * n))


def tv_radius(n: int, k: int, alpha: float) -> float:
    """Radius of the total variation ``TV(p_n, p)`` (half the L1 norm) over ``k`` bins.

    ``P(||p_n - p||_1 >= e) <= (2^k - 2) exp(-n e^2 / 2)`` (Weissman et al.
    2003, Theorem 2.1), so ``P(TV >= e) <= 2^k exp(-2 n e^2)``.

    >>> round(tv_radius(10_000, 16, 1e-6), 4)
    0.0353
    """
    if n <= 0:
        return math.inf
    _check(n, k, alpha)
    return math.sqrt((k * math.log(2.0) + math.log(1.0 / alpha)) / (2.0 * n))


def kl_radius(n: int, k: int, alpha: float) -> float:
    """Radius (nats) of the relative entropy ``KL(p_n || p)`` over at most ``k`` bins.

    Agrawal (2020) bounds the moment generating function of ``KL(p_n || p)``
    by that of a Gamma(``k - 1``, rate ``n``); Chernoff's method then gives,
    for ``e > (k - 1) / n``,

        ``P(KL(p_n || p) >= e) <= exp(-n e) (e_ n e / (k - 1))^(k - 1)``

    (``e_`` is Euler's number). With ``u = n e / (k - 1)`` the right-hand side
    is ``alpha`` where ``u - ln u = 1 + ln(1 / alpha) / (k - 1)``, solved by
    Newton's method from the right (the function is convex and increasing for
    ``u > 1``, so the iterates decrease to the root). The bound grows with
    ``k`` in that range, so ``k`` = the number of bins is valid when some bins
    have probability 0.

    >>> round(kl_radius(10_000, 20, 1e-8), 5)
    0.00589
    """
    if n <= 0:
        return math.inf
    _check(n, k, alpha)
    a = 1.0 + math.log(1.0 / alpha) / (k - 1)
    u = 2.0 * a
    for _ in range(100):
        step = (u - math.log(u) - a) / (1.0 - 1.0 / u)
        u -= step
        if step < 1e-12 * u:
            break
    return u * (k - 1) / n


def js_radius(n: int, k: int, alpha: float) -> float:
    """Radius of the Jensen-Shannon distance (base 2) ``d_JS(p_n, p)`` over ``k`` bins.

    Derivation. The Jensen-Shannon divergence is the f-divergence of
    ``f_JS(t) = (t ln(2t / (1 + t)) + ln(2 / (1 + t))) / 2`` (nats), and
    ``KL(P || Q)`` that of ``f_KL(t) = t ln t - t + 1``; both are convex, 0
    with slope 0 at ``t = 1``. The ratio ``f_JS / f_KL`` falls from
    ``ln(2) / 2`` at ``t -> 0`` (where ``f_JS = ln(2) / 2`` and ``f_KL = 1``)
    to 0 as ``t -> inf`` (``f_JS`` grows like ``t ln(2) / 2``, ``f_KL`` like
    ``t ln t``); it never exceeds ``ln(2) / 2`` (checked on a fine grid in
    the tests). So for ``P`` absolutely continuous with respect to ``Q`` —
    always true of ``p_n`` and ``p`` —
    ``JSD(P, Q) <= (ln(2) / 2) KL(P || Q)`` in nats, i.e.
    ``JSD_bits(p_n, p) <= KL_nats(p_n || p) / 2``, and with
    :func:`kl_radius`

        ``P(d_JS(p_n, p) >= sqrt(kl_radius / 2)) <= alpha``.

    The JS distance ``sqrt(JSD_bits)`` is a metric (Endres and Schindelin
    2003), so ``|d_JS(p_n, q_m) - d_JS(p, q)| <= d_JS(p_n, p) + d_JS(q_m, q)``.

    Assumptions: the ``n`` observations are independent draws from one
    fixed ``p`` and the bins are fixed before them. The radius shrinks as
    ``sqrt(k log(n) / n)``; the earlier ``sqrt`` of the TV radius
    (:func:`js_radius_lin`) as ``(k / n)^(1/4)``.

    >>> round(js_radius(10_000, 20, 1e-8), 4), round(js_radius_lin(10_000, 20, 1e-8), 4)
    (0.0543, 0.2004)
    """
    return math.sqrt(min(1.0, kl_radius(n, k, alpha) / 2.0))


def js_radius_lin(n: int, k: int, alpha: float) -> float:
    """The square root of the TV radius: valid as ``d_JS <= sqrt(TV)`` (Lin 1991), but loose.

    Kept to compare with :func:`js_radius`, which replaced it.
    """
    return math.sqrt(min(1.0, tv_radius(n, k, alpha)))
