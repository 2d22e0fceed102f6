"""The event dicts of one block: inferences, actions and outcomes, as in ``monitor.events``.

Each builder turns the block's per-request arrays and the events' formatted
timestamps into the JSON-ready dicts the simulator emits, with their ids,
fields and key order. Inference ids follow the request number; action and
outcome ids count from the ``first_id`` the caller passes, so they are
numbered in causal order across blocks.

Examples
--------
>>> import numpy as np
>>> from monitor.demo.scenario import Scenario
>>> from monitor.demo.traffic import NOVEL_TOOL_CODE
>>> rows = np.array([0, 0], dtype=np.int64)
>>> tools = np.array([NOVEL_TOOL_CODE, ESCALATION_CODE], dtype=np.int64)
>>> stamps = ["2026-11-02T09:00:00.100000Z", "2026-11-02T09:00:00.200000Z"]
>>> events = action_events(Scenario(), 8, 3, stamps, rows, np.array([True]), tools)
>>> [(e["id"], e["request_id"], e["action"], e.get("tool")) for e in events]
[('a-3', 'r-8', 'tool_call', 'iam.grant_admin'), ('a-4', 'r-8', 'escalation', None)]
"""

from __future__ import annotations

from monitor.demo.scenario import Scenario
from monitor.demo.traffic import (
    AMOUNT_BANDS,
    CALLABLE_PRIVILEGED,
    CALLABLE_TOOLS,
    DECISIONS,
    ESCALATION_CODE,
    LANGS,
    BoolArray,
    EventDict,
    FloatArray,
    IntArray,
)

__all__ = ["action_events", "inference_events", "outcome_events"]


def inference_events(
    sc: Scenario,
    request: IntArray,
    stamps: list[str],
    candidate: BoolArray,
    score: FloatArray,
    decision: IntArray,
    lang: IntArray,
    band: IntArray,
    latency_ms: FloatArray,
) -> list[EventDict]:
    """One ``inference`` event per request.

    Parameters
    ----------
    sc
        The scenario (model name and versions).
    request
        The requests' numbers.
    stamps
        Each request's inference time, formatted.
    candidate
        Whether the candidate served each request.
    score, decision, latency_ms
        The published score, decision index and latency of each request.
    lang, band
        Each request's language and amount-band index.

    Returns
    -------
    list of dict
        The events, in request order.
    """
    versions = (sc.baseline, sc.candidate)
    return [
        {
            "kind": "inference",
            "id": f"i-{r}",
            "time": stamps[j],
            "request_id": f"r-{r}",
            "model": sc.model,
            "version": versions[c],
            "score": s,
            "decision": DECISIONS[d],
            "segments": {"lang": LANGS[lg], "amount_band": AMOUNT_BANDS[b]},
            "latency_ms": ms,
        }
        for j, (r, c, s, d, lg, b, ms) in enumerate(
            zip(
                request.tolist(),
                candidate.tolist(),
                score.tolist(),
                decision.tolist(),
                lang.tolist(),
                band.tolist(),
                latency_ms.tolist(),
                strict=True,
            )
        )
    ]


def action_events(
    sc: Scenario,
    first: int,
    first_id: int,
    stamps: list[str],
    rows: IntArray,
    candidate: BoolArray,
    tools: IntArray,
) -> list[EventDict]:
    """One ``action`` event per tool call or escalation.

    Parameters
    ----------
    sc
        The scenario (model name and versions).
    first
        Number of the block's first request.
    first_id
        Number of the first action's id (``a-<first_id>``).
    stamps
        Each action's time, formatted.
    rows
        The request of each action, relative to ``first``.
    candidate
        Whether the candidate served each request of the block.
    tools
        Each action's code: an index into the callable tools, or the
        escalation code.

    Returns
    -------
    list of dict
        The events, in the order of ``rows``.
    """
    model = sc.model
    versions = (sc.baseline, sc.candidate)
    served_by: list[bool] = candidate.tolist()
    seq = first_id
    return [
        {
            "kind": "action",
            "id": f"a-{seq + j}",
            "time": stamps[j],
            "request_id": f"r-{first + row}",
            "model": model,
            "version": versions[served_by[row]],
            "action": "tool_call",
            "tool": CALLABLE_TOOLS[t],
            "privileged": CALLABLE_PRIVILEGED[t],
            "status": "ok",
        }
        if t != ESCALATION_CODE
        else {
            "kind": "action",
            "id": f"a-{seq + j}",
            "time": stamps[j],
            "request_id": f"r-{first + row}",
            "model": model,
            "version": versions[served_by[row]],
            "action": "escalation",
            "status": "ok",
        }
        for j, (row, t) in enumerate(zip(rows.tolist(), tools.tolist(), strict=True))
    ]


def outcome_events(
    first: int, first_id: int, stamps: list[str], rows: IntArray, fraud: BoolArray
) -> list[EventDict]:
    """One ``outcome`` event per reported label: a chargeback or an audit.

    Parameters
    ----------
    first
        Number of the block's first request.
    first_id
        Number of the first outcome's id (``o-<first_id>``).
    stamps
        Each outcome's time, formatted.
    rows
        The request of each outcome, relative to ``first``.
    fraud
        Whether each request of the block is fraud.

    Returns
    -------
    list of dict
        The events, in the order of ``rows``.
    """
    seq = first_id
    is_fraud: list[bool] = fraud.tolist()
    return [
        {
            "kind": "outcome",
            "id": f"o-{seq + j}",
            "time": stamps[j],
            "request_id": f"r-{first + row}",
            "label": "fraud" if is_fraud[row] else "legit",
            "source": "chargeback" if is_fraud[row] else "audit",
        }
        for j, row in enumerate(rows.tolist())
    ]
