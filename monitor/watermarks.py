"""Event time per input partition, as Flink and Kafka Streams keep it.

Each input (a Kafka partition ``topic:partition``, or a replay file) has its
own watermark per model: the largest inference time of that model seen on it.
A model's watermark is the *minimum* over the inputs that carry it and are not
idle, so a partition drained ahead of the others during a catch-up never
makes the others' events late. An input is idle for a model once it has
delivered none of that model's inferences for ``idle_seconds`` of wall time
and has no backlog (the source reports the messages waiting on each input):
it then stops holding the model back, and rejoins when it delivers again.

An input assigned but not yet heard from holds every model back (it may carry
any of them) while it has messages waiting, or while that is not known yet
and it has been assigned for less than ``idle_seconds``.

After a restore from a checkpoint nothing is released until the inputs are
assigned again (:meth:`Watermarks.assign`): an input that had delivered
nothing before the checkpoint is not in it, and must not find its buckets
released when it is assigned. Restored inputs that are not assigned then are
forgotten. When every input of a
model is idle, the model's watermark is the largest of theirs: everything
delivered so far can be judged.

References
----------
T. Akidau et al., "The Dataflow Model", PVLDB 8(12), 1792-1803, 2015
(watermarks as a lower bound on future event times, section 2.3).
Apache Flink documentation, "Generating Watermarks: Dealing With Idle Sources"
and "Watermark Strategies and the Kafka Connector" (per-partition watermarks,
the minimum across partitions).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["Watermarks"]


class Watermarks:
    """Per-(model, input) event-time watermarks with idleness.

    Parameters
    ----------
    idle_seconds
        Wall-clock seconds without a model's data after which an input without
        backlog stops holding that model back.
    lateness
        Allowed out-of-orderness, in event-time seconds: a model's watermark trails
        the minimum over its inputs by this much, so an event up to ``lateness``
        behind the newest one on its input still counts (Flink's bounded
        out-of-orderness). When every input is idle nothing is held back.
    clock
        Wall clock in seconds (monotonic); injectable for tests.

    Examples
    --------
    >>> now = [0.0]
    >>> wm = Watermarks(idle_seconds=30.0, clock=lambda: now[0])
    >>> wm.assign(["t:0", "t:1"])
    >>> wm.observe("m", "t:0", 600.0)           # t:0 drained far ahead
    >>> wm.watermark("m")                       # t:1 not heard from: holds m back
    -inf
    >>> wm.observe("m", "t:1", 10.0)
    >>> wm.watermark("m")
    10.0
    >>> now[0] = 31.0; wm.observe("m", "t:0", 601.0)
    >>> wm.watermark("m")                       # t:1 idle for 31 s: no longer holds m
    601.0
    >>> late = Watermarks(lateness=5.0, clock=lambda: now[0])
    >>> late.assign(["t:0"]); late.observe("m", "t:0", 100.0)
    >>> late.watermark("m")                     # 5 s of disorder allowed
    95.0
    """

    def __init__(
        self,
        idle_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        lateness: float = 0.0,
    ) -> None:
        if not idle_seconds > 0:
            raise ValueError(f"idle_seconds must be > 0, got {idle_seconds}")
        if not lateness >= 0:
            raise ValueError(f"lateness must be >= 0, got {lateness}")
        self.idle_seconds = idle_seconds
        #: Allowed out-of-orderness; set to 0 at the end of a finite input (a replay).
        self.lateness = lateness
        self._clock = clock
        #: model -> input -> largest inference time seen there.
        self._marks: dict[str, dict[str, float]] = {}
        #: (model, input) -> wall time of its latest inference.
        self._heard: dict[tuple[str, str], float] = {}
        #: Inputs assigned and not yet heard from -> wall time of assignment.
        self._pending: dict[str, float] = {}
        #: Restored from a checkpoint, and the inputs not assigned since: hold everything.
        self._awaiting = False

    def assign(self, inputs: Iterable[str]) -> None:
        """Inputs now read by this process; those not yet heard from hold every model back.

        The first assignment after :meth:`restore` is the whole assignment: restored
        inputs outside it are forgotten.
        """
        now = self._clock()
        inputs = list(inputs)
        known = {i for marks in self._marks.values() for i in marks}
        if self._awaiting:
            self._awaiting = False
            self.revoke(known - set(inputs))
            known &= set(inputs)
        for name in inputs:
            if name not in known:
                self._pending.setdefault(name, now)

    def revoke(self, inputs: Iterable[str]) -> None:
        """Inputs no longer read here: forget them."""
        gone = set(inputs)
        for name in gone:
            self._pending.pop(name, None)
        for model, marks in self._marks.items():
            for name in gone & marks.keys():
                del marks[name]
                self._heard.pop((model, name), None)

    def heard(self, inputs: Iterable[str]) -> None:
        """Inputs that delivered a message (of any kind): no longer pending."""
        for name in inputs:
            self._pending.pop(name, None)

    def observe(self, model: str, source: str, event_time: float) -> None:
        """An inference of ``model`` at ``event_time`` was read from ``source``."""
        self._pending.pop(source, None)
        marks = self._marks.setdefault(model, {})
        if event_time > marks.get(source, -math.inf):
            marks[source] = event_time
        self._heard[(model, source)] = self._clock()

    def watermark(self, model: str, backlog: Mapping[str, int | None] | None = None) -> float:
        """The model's event time: the minimum over its inputs that are not idle, less the
        allowed lateness.

        ``backlog``: messages waiting per input, None where not known yet; an
        input with messages waiting is never idle.
        """
        if self._awaiting:
            return -math.inf  # restored: wait to learn which inputs are read here
        lag = backlog or {}
        idle_after = self._clock() - self.idle_seconds
        for name, since in self._pending.items():
            waiting = lag.get(name)
            if (waiting is None and since > idle_after) or (waiting or 0) > 0:
                return -math.inf  # an input that may carry this model has said nothing yet
        marks = self._marks.get(model)
        if not marks:
            return -math.inf
        active = [
            mark
            for name, mark in marks.items()
            if self._heard[(model, name)] > idle_after or (lag.get(name) or 0) > 0
        ]
        return min(active) - self.lateness if active else max(marks.values())

    # -- checkpoints -------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The per-(model, input) watermarks; wall times are not kept (they restart now)."""
        return {model: dict(marks) for model, marks in self._marks.items()}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state`: every input counts as just heard from.

        Nothing is released until the inputs are assigned again; inputs assigned
        before the restore (a partition's own pipeline) count as that assignment.
        """
        now = self._clock()
        self._marks = {
            m: {str(i): float(t) for i, t in marks.items()} for m, marks in state.items()
        }
        self._heard = {(m, i): now for m, marks in self._marks.items() for i in marks}
        assigned, self._pending = list(self._pending), {}
        self._awaiting = True
        if assigned:
            self.assign(assigned)
