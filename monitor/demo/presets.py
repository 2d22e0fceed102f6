"""Named stories of demo traffic for ``shiftwatch simulate --preset``.

A preset is a :class:`~monitor.demo.scenario.Scenario` and a number of
requests: a whole story, ready to replay. ``week`` is the weekly review's
week (``docs/review.md``): seven days of a canary at a modest rate, in which
the candidate's escalation shift acts from day 1 to day 3 and is then fixed,
and a deny-rate shift in the rare ``lang=ga`` segment starts at day 3.5 and
stays. The demo policy (``monitor/demo/policy.yaml``) fires ``escalations``
and later resolves it, and fires ``deny-rate`` for ``lang=ga`` after day 3.5.

Examples
--------
>>> scenario, requests = preset("week")
>>> scenario.escalation_window, scenario.deny_window
((86400.0, 259200.0), (302400.0, None))
>>> requests == round(7 * 86_400 * scenario.requests_per_second)
True
"""

from __future__ import annotations

from typing import Final

from monitor.demo.scenario import Scenario

__all__ = ["PRESETS", "preset"]

DAY: Final = 86_400.0
#: Requests per second of event time in the week: ~2.1 events per request, so
#: about 275k events, which replay in seconds.
WEEK_RATE: Final = 0.21

PRESETS: Final = ("week",)


def preset(name: str, seed: int = 7) -> tuple[Scenario, int]:
    """The scenario and the number of requests of the preset ``name``.

    Parameters
    ----------
    name
        One of :data:`PRESETS`.
    seed
        Seed of the stream.

    Returns
    -------
    tuple of Scenario and int
        The scenario and how many requests tell its story.

    Raises
    ------
    ValueError
        For a name that is not a preset.
    """
    if name != "week":
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    scenario = Scenario(
        seed=seed,
        requests_per_second=WEEK_RATE,
        escalation_window=(1 * DAY, 3 * DAY),
        deny_window=(3.5 * DAY, None),
    )
    return scenario, round(7 * DAY * WEEK_RATE)
