"""The endless stream: :class:`TrafficSimulator` cuts a scenario's blocks into batches.

Blocks of requests come from :class:`~monitor.demo.blocks.BlockGenerator`;
the simulator hands out their events in event-time order, a batch at a time,
each batch ending with the inference of its last request. Actions and
outcomes not yet due wait in a heap keyed by due time, so memory is bounded by
the outstanding ones, and :meth:`TrafficSimulator.drain_outcomes` ends a
finite stream with everything still pending.
"""

from __future__ import annotations

import heapq
from collections import deque
from datetime import datetime, timedelta

from monitor.demo.blocks import SLOTS, Block, BlockGenerator, Keyed, key
from monitor.demo.scenario import Scenario
from monitor.demo.traffic import BLOCK_REQUESTS, EventDict

__all__ = ["TrafficSimulator"]


class TrafficSimulator:
    """An endless, deterministic event stream for one :class:`Scenario`.

    The stream is a fixed sequence of events ordered by event time (ties
    broken by request and causal order); :meth:`next_batch` cuts it after the
    inference of the last requested request. Actions and outcomes whose time
    has not yet come wait in a heap keyed by due time, so memory is bounded
    by the outstanding ones.

    Parameters
    ----------
    scenario
        The traffic and the candidate's degradations.

    Examples
    --------
    >>> sim = TrafficSimulator(Scenario(seed=5, label_delay_days=2.0))
    >>> live = sim.next_batch(2000)
    >>> {e["kind"] for e in live} == {"inference", "action"}
    True
    >>> late = sim.drain_outcomes()
    >>> late[-1]["kind"], late[-1]["time"] > live[-1]["time"]
    ('outcome', True)
    """

    def __init__(self, scenario: Scenario) -> None:
        self._scenario = scenario
        self._generator = BlockGenerator(scenario)
        self._blocks: deque[Block] = deque()
        self._pending: list[Keyed] = []
        self._next_block = 0
        self._generated = 0
        self._emitted = 0
        self._now_us = 0
        self._drained = False

    @property
    def scenario(self) -> Scenario:
        """The scenario this stream simulates."""
        return self._scenario

    @property
    def now(self) -> datetime:
        """Event time of the latest emitted request (the scenario start before any)."""
        return self._scenario.start + timedelta(microseconds=self._now_us)

    @property
    def requests(self) -> int:
        """Number of requests whose inference has been emitted."""
        return self._emitted

    @property
    def pending(self) -> int:
        """Actions and outcomes generated but not yet due (bounded memory check)."""
        return len(self._pending)

    def next_batch(self, n_requests: int) -> list[EventDict]:
        """Return the events of the next requests, in event-time order.

        Parameters
        ----------
        n_requests
            How many more requests to simulate.

        Returns
        -------
        list of dict
            The inferences of the next ``n_requests`` requests, interleaved by
            time with every action and outcome (of these or earlier requests)
            due no later than the last of those inferences. Later ones follow
            in later batches or from :meth:`drain_outcomes`.

        Raises
        ------
        ValueError
            If ``n_requests`` is negative.
        RuntimeError
            If the stream was already drained.
        """
        if n_requests < 0:
            raise ValueError(f"n_requests must be non-negative, got {n_requests}")
        if self._drained:
            raise RuntimeError("the stream was drained; start a new TrafficSimulator")
        if n_requests == 0:
            return []
        target = self._emitted + n_requests
        while self._generated < target:
            self._generate_block()

        last = target - 1
        near: list[Keyed] = []
        while True:
            block = self._blocks[0]
            end = block.first + len(block.inference_pos)
            if last < end:
                cut = block.inference_pos[last - block.first] + 1
                near.extend(block.events[block.cursor : cut])
                block.cursor = cut
                if cut == len(block.events):
                    self._blocks.popleft()
                break
            near.extend(block.events[block.cursor :])
            self._blocks.popleft()

        # The cut is the last request's inference, the final near event.
        watermark = key(near[-1])
        due: list[Keyed] = []
        pending = self._pending
        while pending and key(pending[0]) <= watermark:
            due.append(heapq.heappop(pending))
        self._emitted = target
        self._now_us = watermark[0]
        if due:
            # Two sorted runs: timsort merges them in linear time. Keys are
            # unique, so the events themselves are never compared.
            near += due
            near.sort()
        return [item[2] for item in near]

    def drain_outcomes(self) -> list[EventDict]:
        """Return everything still pending for the emitted requests and end the stream.

        Call it at the end of a finite stream. Besides the delayed outcomes
        this includes the actions of the last few hundred milliseconds of
        requests, so the finite stream is complete and still in time order.

        Returns
        -------
        list of dict
            The pending events in event-time order.
        """
        limit = self._emitted * SLOTS
        rest = [item for item in self._pending if item[1] < limit]
        for block in self._blocks:
            rest.extend(item for item in block.events[block.cursor :] if item[1] < limit)
        self._pending = []
        self._blocks.clear()
        self._drained = True
        rest.sort(key=key)
        return [item[2] for item in rest]

    def _generate_block(self) -> None:
        """Generate the next block; its events after its last inference go to the heap."""
        block, far = self._generator.generate(self._next_block)
        for item in far:
            heapq.heappush(self._pending, item)
        self._blocks.append(block)
        self._next_block += 1
        self._generated += BLOCK_REQUESTS
