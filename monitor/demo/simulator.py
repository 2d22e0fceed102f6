"""Deterministic traffic of a fraud-scoring agent served by a baseline and a candidate.

The simulated service scores payment requests with one of two versions of the
same model: the baseline (``v7-fp32``) and an optimised candidate
(``v7-int8``) that takes a share of the traffic, as in a canary rollout. Every
request produces an ``inference`` event, then a few ``action`` events (tool
calls, sometimes an escalation to a human) a few hundred milliseconds later,
and sometimes an ``outcome`` event (a chargeback or an audit label) seconds
to days later. The events follow the contract in ``monitor.events``.

Both versions see the same input distribution; the candidate behaves like the
baseline except for the degradations its :class:`Scenario` switches on, so a
monitor that is working should find exactly those.

The stream is a pure function of the scenario. Randomness is drawn per block
of :data:`BLOCK_REQUESTS` requests from a generator seeded with
``(seed, block index)``, and the same draws are made whatever the scenario's
degradations, so the output does not depend on how the stream is cut into
batches, and two scenarios with the same seed differ only where their
parameters act.

The simulator is split by what each part does; this module is its public
face and re-exports what callers import:

- :mod:`monitor.demo.scenario`: :class:`Scenario`, the input;
- :mod:`monitor.demo.traffic`: the vocabulary and the baseline's distributions;
- :mod:`monitor.demo.candidate`: the candidate's score and decision maths;
- :mod:`monitor.demo.draws`: a block's random draws, in their fixed order;
- :mod:`monitor.demo.serving`: what each request becomes once served;
- :mod:`monitor.demo.event_builders`: the event dicts;
- :mod:`monitor.demo.blocks`: a block's events, timed and in stream order;
- :mod:`monitor.demo.stream`: :class:`TrafficSimulator`, the endless stream;
- :mod:`monitor.demo.finite`: :func:`generate` and :func:`write_jsonl`.

Examples
--------
>>> sim = TrafficSimulator(Scenario(seed=1))
>>> events = sim.next_batch(1000)
>>> first = events[0]
>>> first["kind"], first["id"], first["request_id"], first["time"]
('inference', 'i-0', 'r-0', '2026-11-02T09:00:00.000000Z')
>>> sum(e["kind"] == "inference" for e in events)
1000
>>> sim.now.isoformat()
'2026-11-02T09:00:00.999000+00:00'
"""

from __future__ import annotations

from monitor.demo.finite import generate, write_jsonl
from monitor.demo.scenario import Scenario
from monitor.demo.stream import TrafficSimulator
from monitor.demo.traffic import (
    AMOUNT_BANDS,
    BLOCK_REQUESTS,
    DECISIONS,
    LANGS,
    NOVEL_TOOL,
    RARE_LANG,
    TOOLS,
    EventDict,
)
from monitor.demo.traffic import DENY_ABOVE as DENY_ABOVE
from monitor.demo.traffic import REVIEW_ABOVE as REVIEW_ABOVE

__all__ = [
    "AMOUNT_BANDS",
    "BLOCK_REQUESTS",
    "DECISIONS",
    "LANGS",
    "NOVEL_TOOL",
    "RARE_LANG",
    "TOOLS",
    "EventDict",
    "Scenario",
    "TrafficSimulator",
    "generate",
    "write_jsonl",
]
