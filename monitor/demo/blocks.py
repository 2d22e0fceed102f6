"""One block of the stream: its requests' events, timed, numbered and in stream order.

:class:`BlockGenerator` makes block ``k`` of a scenario's stream: it draws the
block's randomness (:mod:`monitor.demo.draws`), serves its requests
(:mod:`monitor.demo.serving`), times every event in microseconds since the
scenario start, builds the event dicts (:mod:`monitor.demo.event_builders`)
and orders them by ``(time, sequence)``. The sequence number of an event is
``request * SLOTS + slot``, its slot giving the causal order within a request,
so the pair orders the whole stream totally. A block's events up to its last
inference form a :class:`Block`; the later ones may interleave with later
blocks and are handed back separately.

Examples
--------
>>> from monitor.demo.scenario import Scenario
>>> block, far = BlockGenerator(Scenario(seed=1)).generate(0)
>>> block.first, len(block.inference_pos), key(block.events[0])
(0, 4096, (0, 0))
>>> all(key(item) > key(block.events[-1]) for item in far)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Final, TypeAlias

import numpy as np

from monitor.demo.candidate import CandidateModel
from monitor.demo.draws import Draws, draw
from monitor.demo.event_builders import action_events, inference_events, outcome_events
from monitor.demo.scenario import Scenario
from monitor.demo.serving import Served, serve
from monitor.demo.traffic import (
    BLOCK_REQUESTS,
    ESCALATION_CODE,
    MAX_TOOL_CALLS,
    MIN_LABEL_DELAY_S,
    NOVEL_TOOL_CODE,
    EventDict,
    IntArray,
)

__all__ = ["SLOTS", "Block", "BlockGenerator", "Keyed", "key"]

# (microseconds since the scenario start, stream sequence number, event). The
# sequence number is request * SLOTS + slot, unique, so the pair orders the
# stream totally and the event itself is never compared.
Keyed: TypeAlias = tuple[int, int, EventDict]

# Stream sequence slots within one request, in causal order.
SLOTS: Final = 8
SLOT_INFERENCE: Final = 0
SLOT_FIRST_TOOL: Final = 1
SLOT_NOVEL_TOOL: Final = 4
SLOT_ESCALATION: Final = 5
SLOT_OUTCOME: Final = 6


@dataclass(slots=True)
class Block:
    """Generated events of one block not yet emitted, with the block's far events gone.

    ``events`` are the block's events up to its last inference, in stream
    order; ``inference_pos[j]`` is the position of request ``first + j``'s
    inference in it; ``cursor`` is the next position to emit.
    """

    first: int
    events: list[Keyed]
    inference_pos: list[int]
    cursor: int = 0


def key(item: Keyed) -> tuple[int, int]:
    """The stream-order key of an event: its time and its sequence number."""
    return item[0], item[1]


class BlockGenerator:
    """Makes the blocks of one scenario's stream, numbering actions and outcomes across them.

    Blocks must be generated in order, 0, 1, 2..., since action and outcome
    ids count on from the previous block's.

    Parameters
    ----------
    scenario
        The traffic and the candidate's degradations.
    """

    def __init__(self, scenario: Scenario) -> None:
        self._scenario = scenario
        self._candidate = CandidateModel.from_scenario(scenario)
        utc_start = scenario.start.astimezone(UTC).replace(tzinfo=None)
        self._start64 = np.datetime64(utc_start, "us")
        self._us_per_request = 1e6 / scenario.requests_per_second
        self._action_seq = 0
        self._outcome_seq = 0

    def generate(self, index: int) -> tuple[Block, list[Keyed]]:
        """Generate block ``index``.

        Parameters
        ----------
        index
            The block, the next one after the previous call's.

        Returns
        -------
        Block
            The block's events up to its last inference, in stream order.
        list of tuple
            Its events after that inference (late actions and outcomes), in
            stream order.
        """
        sc = self._scenario
        first = index * BLOCK_REQUESTS
        n = BLOCK_REQUESTS
        d = draw(np.random.default_rng([sc.seed, index]), n)
        served = serve(sc, self._candidate, d, first)
        times, seqs, events = self._timed_events(first, d, served)

        stream_order = np.lexsort((seqs, times))
        position = np.empty_like(stream_order)
        position[stream_order] = np.arange(len(stream_order))
        time_list: list[int] = times.tolist()
        seq_list: list[int] = seqs.tolist()
        keyed: list[Keyed] = [(time_list[i], seq_list[i], events[i]) for i in stream_order.tolist()]
        inference_pos: list[int] = position[:n].tolist()
        # Everything after the block's last inference waits in the heap: it
        # may interleave with later blocks.
        split = inference_pos[-1] + 1
        block = Block(first=first, events=keyed[:split], inference_pos=inference_pos)
        return block, keyed[split:]

    def _timed_events(
        self, first: int, d: Draws, served: Served
    ) -> tuple[IntArray, IntArray, list[EventDict]]:
        """Times, sequence numbers and dicts of a block's events: inferences, actions, outcomes."""
        n = len(d.serve_u)
        reported = served.reported
        # Event times in microseconds since the start.
        request = np.arange(first, first + n, dtype=np.int64)
        t_inference = np.floor(request * self._us_per_request).astype(np.int64)
        t_answered = t_inference + np.rint(served.latency_ms * 1000.0).astype(np.int64)
        after_us = np.rint(np.cumsum(d.gaps_ms, axis=1) * 1000.0).astype(np.int64)

        tool_rows, tool_cols = np.nonzero(
            np.arange(MAX_TOOL_CALLS)[np.newaxis, :] < d.tool_count[:, np.newaxis]
        )
        novel_rows = np.flatnonzero(served.novel)
        escalation_rows = np.flatnonzero(served.escalate)
        action_rows = np.concatenate((tool_rows, novel_rows, escalation_rows))
        action_slots = np.concatenate(
            (
                SLOT_FIRST_TOOL + tool_cols,
                np.full(len(novel_rows), SLOT_NOVEL_TOOL),
                np.full(len(escalation_rows), SLOT_ESCALATION),
            )
        ).astype(np.int64)
        action_after = np.concatenate(
            (
                after_us[tool_rows, tool_cols],
                after_us[novel_rows, MAX_TOOL_CALLS],
                after_us[escalation_rows, MAX_TOOL_CALLS + 1],
            )
        )
        action_tool = np.concatenate(
            (
                d.tool[tool_rows, tool_cols],
                np.full(len(novel_rows), NOVEL_TOOL_CODE),
                np.full(len(escalation_rows), ESCALATION_CODE),
            )
        )
        # Action ids count in causal order: by request, then slot.
        order = np.argsort(action_rows * SLOTS + action_slots, kind="stable")
        action_rows = action_rows[order]
        action_slots = action_slots[order]
        t_action = t_answered[action_rows] + action_after[order]
        action_tool = action_tool[order]
        t_outcome = t_answered[reported] + np.rint(
            (MIN_LABEL_DELAY_S + served.mean_delay_s * d.delay_unit[reported]) * 1e6
        ).astype(np.int64)

        times: IntArray = np.concatenate((t_inference, t_action, t_outcome))
        seqs: IntArray = np.concatenate(
            (
                request * SLOTS + SLOT_INFERENCE,
                (first + action_rows) * SLOTS + action_slots,
                (first + reported) * SLOTS + SLOT_OUTCOME,
            )
        )
        stamps = np.datetime_as_string(
            self._start64 + times.astype("timedelta64[us]"), unit="us", timezone="UTC"
        ).tolist()
        sc = self._scenario
        events = inference_events(
            sc,
            request,
            stamps,
            served.candidate,
            served.score,
            served.decision,
            d.lang,
            d.band,
            served.latency_ms,
        )
        n_actions = len(action_rows)
        events += action_events(
            sc,
            first,
            self._action_seq,
            stamps[n : n + n_actions],
            action_rows,
            served.candidate,
            action_tool,
        )
        self._action_seq += n_actions
        events += outcome_events(
            first, self._outcome_seq, stamps[n + n_actions :], reported, d.fraud
        )
        self._outcome_seq += len(reported)
        return times, seqs, events
