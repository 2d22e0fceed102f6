"""What the simulated fraud-scoring traffic is made of, before any degradation.

The vocabulary of the events (languages, amount bands, decisions, tools), the
baseline's distributions (segment mix, fraud prior, Beta score mixtures,
escalation and tool-call probabilities, latency, action gaps, label delays)
and the array type aliases the simulator's modules share. Every constant here
is the same for the baseline and the candidate; what the candidate does
differently is in :mod:`monitor.demo.candidate`.

Examples
--------
>>> LANGS[RARE_LANG_INDEX], CALLABLE_TOOLS[NOVEL_TOOL_CODE]
('ga', 'iam.grant_admin')
>>> round(FRAUD_PRIOR, 3)
0.02
"""

from __future__ import annotations

from typing import Final, TypeAlias

import numpy as np
import numpy.typing as npt

EventDict: TypeAlias = dict[str, object]
FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]

#: Requests generated together from one seeded generator.
BLOCK_REQUESTS: Final = 4096

LANGS: Final = ("en", "de", "fr", "ga")
LANG_P: Final = (0.60, 0.20, 0.15, 0.05)
#: The rare language segment where the candidate's degradations concentrate.
RARE_LANG: Final = "ga"
RARE_LANG_INDEX: Final = LANGS.index(RARE_LANG)
AMOUNT_BANDS: Final = ("low", "mid", "high")
BAND_P: Final = (0.6, 0.3, 0.1)
FRAUD_P_BY_BAND: Final = (0.01, 0.02, 0.08)  # 2 % overall

# Scores are Beta distributed. A minority of legitimate requests look risky
# (new device, travel), which gives the deny decision a realistic ~2 % rate
# without putting most legitimate traffic into review.
LEGIT_BETA: Final = (1.5, 6.0)
RISKY_LEGIT_BETA: Final = (3.0, 2.0)
RISKY_LEGIT_SHARE: Final = 0.08
FRAUD_BETA: Final = (5.0, 2.0)
DENY_ABOVE: Final = 0.8
REVIEW_ABOVE: Final = 0.5
DECISIONS: Final = ("allow", "review", "deny")

# ~8 % of requests escalate; reviews far more often than the rest.
ESCALATION_P_BY_DECISION: Final = (0.05, 0.35, 0.20)
TOOL_COUNT_P: Final = (0.35, 0.35, 0.20, 0.10)
MAX_TOOL_CALLS: Final = len(TOOL_COUNT_P) - 1
TOOLS: Final = ("crm.lookup", "payments.history", "kyc.verify", "refund.issue")
TOOL_P: Final = (0.45, 0.35, 0.198, 0.002)
TOOL_PRIVILEGED: Final = (False, False, False, True)
#: The privileged tool only a degraded candidate calls.
NOVEL_TOOL: Final = "iam.grant_admin"
NOVEL_TOOL_P: Final = 0.005
# Action codes: an index into these, or the escalation code.
CALLABLE_TOOLS: Final = (*TOOLS, NOVEL_TOOL)
CALLABLE_PRIVILEGED: Final = (*TOOL_PRIVILEGED, True)
NOVEL_TOOL_CODE: Final = len(TOOLS)
ESCALATION_CODE: Final = -1

LEGIT_AUDIT_P: Final = 0.02
FAST_LABEL_MEAN_S: Final = 60.0
MIN_LABEL_DELAY_S: Final = 1.0
LATENCY_MEDIAN_MS: Final = 35.0
LATENCY_SIGMA: Final = 0.3
ACTION_GAP_MIN_MS: Final = 50.0
ACTION_GAP_MEAN_MS: Final = 150.0
# One gap before each tool call, then one before the novel tool and one before
# the escalation, each counted from the previous step.
ACTION_GAPS: Final = MAX_TOOL_CALLS + 2


def cumulative(p: tuple[float, ...]) -> FloatArray:
    """Cut points that map a uniform draw in [0, 1) onto an index of ``p``.

    Parameters
    ----------
    p
        Probabilities summing to 1.

    Returns
    -------
    numpy.ndarray
        The cumulative sums without the final 1.0, for
        ``np.searchsorted(..., side="right")``.
    """
    # Without the final 1.0, searchsorted(..., side="right") maps [0, 1) onto
    # 0..len(p)-1 even when the probabilities' float sum is a hair below 1.
    return np.cumsum(np.asarray(p, dtype=np.float64))[:-1]


LANG_CUM: Final = cumulative(LANG_P)
BAND_CUM: Final = cumulative(BAND_P)
TOOL_COUNT_CUM: Final = cumulative(TOOL_COUNT_P)
TOOL_CUM: Final = cumulative(TOOL_P)
FRAUD_P: Final = np.asarray(FRAUD_P_BY_BAND, dtype=np.float64)
ESCALATION_P: Final = np.asarray(ESCALATION_P_BY_DECISION, dtype=np.float64)
FRAUD_PRIOR: Final = float(np.dot(BAND_P, FRAUD_P_BY_BAND))
