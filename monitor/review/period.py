"""The period a review covers: ``--since`` as a duration back from ``--until``.

Examples
--------
>>> parse_duration("7d"), parse_duration("12h"), parse_duration("2w"), parse_duration("30m")
(604800.0, 43200.0, 1209600.0, 1800.0)
>>> parse_until("2026-11-09T09:00:00Z", latest=0.0, now=0.0)
1794214800.0
>>> parse_until(None, latest=5.0, now=9.0), parse_until("now", latest=5.0, now=9.0)
(5.0, 9.0)
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Final

__all__ = ["UNITS", "parse_duration", "parse_until"]

#: Seconds per duration unit.
UNITS: Final = {"m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}

_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``30m``, ``12h``, ``7d`` or ``2w``.

    Raises
    ------
    ValueError
        When ``text`` is not a positive number followed by one of m, h, d, w.
    """
    match = _DURATION.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(
            f"--since {text!r} is not a duration: give a positive number and a unit, "
            "m (minutes), h (hours), d (days) or w (weeks), e.g. 7d"
        )
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_until(text: str | None, *, latest: float, now: float) -> float:
    """The end of the period in epoch seconds.

    None: ``latest`` (the last time in the history, so a replay of an old file
    still reviews); ``now``: ``now``; else an RFC 3339 time with an offset.

    Raises
    ------
    ValueError
        When ``text`` is none of these.
    """
    if text is None:
        return latest
    if text.strip().lower() == "now":
        return now
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError(
            f"--until {text!r} is not a time: give 'now' or RFC 3339 with an offset, "
            "e.g. 2026-11-09T09:00:00Z"
        )
    value = moment.astimezone(UTC).timestamp()
    if not math.isfinite(value):
        raise ValueError(f"--until {text!r} is out of range")
    return value
