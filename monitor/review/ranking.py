"""Segments ranked by how much worse they got.

For each check and segment stream (``key=value``; the overall stream is the
trend's), the latest sample of the period gives the candidate's ``observed``
value, the baseline's ``reference`` and the allowed band ``[lower, upper]``.
Its *worsening* is how far ``observed`` moved from ``reference`` towards the
band's edge on that side, as a share of the distance to that edge: 0 is no
change, 1 is on the edge, above 1 is outside the tolerance. Without a
reference (distance checks, where ``observed`` is already the distance), the
share of the way from ``lower`` to ``upper``. A band edge that is unbounded
(None) gives no worsening on that side.

The rank, best first:

1. streams that breached at any sample of the period;
2. larger worsening, compared in tenths (0.93 and 0.97 tie), because a
   finer order is noise;
3. rarer segments first: fewer candidate observations, where a small
   change is the easiest to miss in a dashboard and a model compressed for
   the common case is most likely to have lost accuracy;
4. check and segment name, so the order is stable.

Examples
--------
>>> worsening(observed=0.03, reference=0.02, lower=0.01, upper=0.03)
1.0
>>> round(worsening(observed=0.015, reference=0.02, lower=0.01, upper=0.03), 6)
0.5
>>> round(worsening(observed=0.08, reference=None, lower=0.0, upper=0.1), 6)
0.8
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from monitor.history.rows import CheckSample
from monitor.review.model import SegmentRank

__all__ = ["rank_segments", "worsening"]


def worsening(
    *, observed: float, reference: float | None, lower: float | None, upper: float | None
) -> float:
    """How far ``observed`` went from ``reference`` towards the band's edge (1: on the edge)."""
    if reference is None:
        if lower is None or upper is None:
            return 0.0
        if upper <= lower:
            return math.inf if observed > upper else 0.0
        return max(0.0, (observed - lower) / (upper - lower))
    edge = upper if observed >= reference else lower
    if edge is None:
        return 0.0
    room = abs(edge - reference)
    moved = abs(observed - reference)
    if room == 0.0:
        return math.inf if moved > 0.0 else 0.0
    return moved / room


def rank_segments(samples: Iterable[CheckSample], limit: int = 12) -> tuple[SegmentRank, ...]:
    """The segment streams of ``samples`` ranked by the module's rule, at most ``limit``."""
    latest: dict[tuple[str, str], CheckSample] = {}
    breached: set[tuple[str, str]] = set()
    for s in samples:
        if not s.segment:
            continue
        key = (s.check, s.segment)
        if s.state == "breach":
            breached.add(key)
        if s.observed is not None and (key not in latest or s.at >= latest[key].at):
            latest[key] = s
    ranked = [
        SegmentRank(
            check=s.check,
            segment=s.segment,
            state=s.state,
            breached=key in breached,
            worsening=worsening(
                observed=float(s.observed or 0.0),
                reference=s.reference,
                lower=s.lower,
                upper=s.upper,
            ),
            observed=float(s.observed or 0.0),
            reference=s.reference,
            lower=s.lower,
            upper=s.upper,
            candidate_seen=s.candidate_seen,
        )
        for key, s in latest.items()
    ]
    ranked.sort(
        key=lambda r: (
            not r.breached,
            -math.floor(min(r.worsening, 1e6) * 10),
            r.candidate_seen,
            r.check,
            r.segment,
        )
    )
    return tuple(ranked[:limit])
