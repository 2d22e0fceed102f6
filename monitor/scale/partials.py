"""What the ingest stage hands the judge stage: one model's routed events of one input batch.

A *partial* is the :class:`~monitor.work.ModelWork` the router made of one
batch of one input partition, for one model, in columns: event times, group
codes, decisions, scores, latencies, the action events, the outcomes' labels,
and the input offset of every row. It travels as msgpack (numpy columns as
raw little-endian bytes) on the partials topic, keyed by model.

The offsets make the hand-over idempotent. The ingest stage commits its
input offsets at checkpoints only; a replica that dies between emitting a
partial and committing re-reads from the committed offset, and whoever reads
next emits the same rows again. The judge keeps, per model and input
partition, the last offset it has applied, and drops every row at or below
it (:func:`to_work`): each event is counted once, whatever was re-sent.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
from numpy.typing import NDArray

from monitor.fast_events import ActionView, FastAction
from monitor.messages import SourcePosition
from monitor.streams import decode_stream, encode_stream
from monitor.work import Columns, GroupTable, ModelWork

__all__ = ["Partial", "from_work", "read_partial", "to_work"]

#: Bumped whenever the layout changes; a judge refuses a partial of another format.
FORMAT = 1


class _Inferences(msgspec.Struct, array_like=True):
    at: bytes  # float64
    group: bytes  # int64, codes of Partial.groups
    offset: bytes  # int64
    decision: list[str | None]
    negative: bytes  # bool
    score: bytes  # float64, nan for none
    latency_ms: bytes  # float64, nan for none


class _Actions(msgspec.Struct, array_like=True):
    at: bytes
    group: bytes
    offset: bytes
    event: list[FastAction]


class _Outcomes(msgspec.Struct, array_like=True):
    at: bytes
    group: bytes
    offset: bytes
    label: list[str]
    negative: bytes
    score: bytes
    own_at: bytes


class Partial(msgspec.Struct, array_like=True):
    """One model's routed events of one batch of one input partition."""

    format: int
    model: str
    topic: str
    partition: int
    #: The input batch's first and last offsets (every message in between was read).
    first: int
    last: int
    #: The largest inference time read on the partition for this model, if any.
    mark: float | None
    #: (version, streams) of each group code used below.
    groups: list[tuple[str, list[list[str]]]]
    inferences: _Inferences
    actions: _Actions
    outcomes: _Outcomes

    @property
    def source(self) -> str:
        return f"{self.topic}:{self.partition}"


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Partial)


def _f64(values: list[float] | list[float | None]) -> bytes:
    return np.asarray([math.nan if v is None else v for v in values], dtype="<f8").tobytes()


def _i64(values: list[int]) -> bytes:
    return np.asarray(values, dtype="<i8").tobytes()


def _flags(values: list[bool]) -> bytes:
    return np.asarray(values, dtype=np.bool_).tobytes()


def _as_fast(event: ActionView) -> FastAction:
    """An action as the fast path's Struct (the decoder's slow path hands out pydantic)."""
    if isinstance(event, FastAction):
        return event
    return FastAction(
        id=event.id,
        time_text=event.time.isoformat(),
        request_id=event.request_id,
        model=event.model,
        version=event.version,
        action=event.action,
        tool=event.tool,
        privileged=event.privileged,
        status=event.status,
        time=event.time,
    )


def from_work(
    model: str, work: ModelWork, topic: str, partition: int, first: int, last: int
) -> bytes:
    """The partial of ``work``, routed from offsets ``first..last`` of ``topic:partition``."""
    inf, act, out = work.inferences, work.actions, work.outcomes
    groups = [(g.version, [encode_stream(s) for s in g.streams]) for g in work.table.groups]
    source = f"{topic}:{partition}"
    partial = Partial(
        format=FORMAT,
        model=model,
        topic=topic,
        partition=partition,
        first=first,
        last=last,
        mark=work.marks.get(source),
        groups=groups,
        inferences=_Inferences(
            at=_f64(inf.at),
            group=_i64(inf.group),
            offset=_i64([p.offset for p in inf.position]),
            decision=list(inf.decision),
            negative=_flags(inf.negative),
            score=_f64(inf.score),
            latency_ms=_f64(inf.latency_ms),
        ),
        actions=_Actions(
            at=_f64(act.at),
            group=_i64(act.group),
            offset=_i64(act.offset),
            event=[_as_fast(e) for e in act.event],
        ),
        outcomes=_Outcomes(
            at=_f64(out.at),
            group=_i64(out.group),
            offset=_i64(out.offset),
            label=list(out.label),
            negative=_flags(out.negative),
            score=_f64(out.score),
            own_at=_f64(out.own_at),
        ),
    )
    return _encoder.encode(partial)


def read_partial(blob: bytes) -> Partial:
    """Decode a partial; ``ValueError`` if it is not one of this release's format."""
    try:
        partial = _decoder.decode(blob)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a shiftwatch partial: {exc}") from None
    if partial.format != FORMAT:
        raise ValueError(f"a partial of format {partial.format}; this release reads {FORMAT}")
    return partial


def _floats(blob: bytes) -> NDArray[np.float64]:
    return np.frombuffer(blob, dtype="<f8")


def _ints(blob: bytes) -> NDArray[np.int64]:
    return np.frombuffer(blob, dtype="<i8")


def _optional(values: NDArray[np.float64]) -> list[float | None]:
    return [None if math.isnan(v) else v for v in values.tolist()]


def to_work(partial: Partial, table: GroupTable, after: int) -> ModelWork:
    """The partial's rows past offset ``after``, as work coded by the judge's ``table``.

    Inferences are located at their input positions (an alert's
    ``evidence.source`` names the event that released it, as in one process).
    """
    recode = np.asarray(
        [
            table.code(version, tuple(decode_stream(s) for s in streams))
            for version, streams in partial.groups
        ]
        or [0],
        dtype=np.int64,
    )
    work = ModelWork(table)
    source = partial.source
    if partial.mark is not None and partial.last > after:
        work.marks[source] = partial.mark
    topic, part = partial.topic, partial.partition

    inf = partial.inferences
    keep, offsets = _kept(inf, work.inferences, recode, after)
    if len(keep):
        rows = work.inferences
        rows.decision = [inf.decision[i] for i in keep.tolist()]
        rows.negative = np.frombuffer(inf.negative, dtype=np.bool_)[keep].tolist()
        rows.score = _optional(_floats(inf.score)[keep])
        rows.latency_ms = _optional(_floats(inf.latency_ms)[keep])
        rows.position = [SourcePosition(topic, part, o) for o in offsets]
        work.position = rows.position[-1]

    act = partial.actions
    keep, work.actions.offset = _kept(act, work.actions, recode, after)
    work.actions.event = [act.event[i] for i in keep.tolist()]

    out = partial.outcomes
    keep, work.outcomes.offset = _kept(out, work.outcomes, recode, after)
    if len(keep):
        rows_o = work.outcomes
        rows_o.label = [out.label[i] for i in keep.tolist()]
        rows_o.negative = np.frombuffer(out.negative, dtype=np.bool_)[keep].tolist()
        rows_o.score = _optional(_floats(out.score)[keep])
        rows_o.own_at = _floats(out.own_at)[keep].tolist()
    return work


def _kept(
    rows: _Inferences | _Actions | _Outcomes, into: Columns, recode: NDArray[np.int64], after: int
) -> tuple[NDArray[np.intp], list[int]]:
    """Which rows lie past offset ``after``; their times and recoded groups go ``into`` the
    work's columns. Returns their indices and their offsets."""
    offsets = _ints(rows.offset)
    keep = np.flatnonzero(offsets > after)
    into.at = _floats(rows.at)[keep].tolist()
    into.group = recode[_ints(rows.group)[keep]].tolist()
    return keep, offsets[keep].tolist()
