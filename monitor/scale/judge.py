"""The judge stage: each model's partials merged, released by its watermark, and judged.

The partials topic is keyed by model, so one replica of the judge stage holds
every partial of a model, from every input partition. For each model it
keeps one :class:`~monitor.pipeline.Pipeline` of that model alone, which
counts the partials' rows into its event-time buckets and releases a bucket
to the detectors once the model's watermark — the minimum over the input
partitions of their newest inference time (:mod:`monitor.watermarks`) — has
passed it, as one process does. Alerts go to the same sinks with the same ids.

Rows are applied once. Per model and input partition the judge keeps the
last input offset it applied, and drops rows at or below it
(:func:`monitor.scale.partials.to_work`): what the ingest stage produced
again after a restart counts once.

At each Quix checkpoint the sink is flushed first: every model judged since
the last one is saved (its pipeline's state, as plain data, and its applied
offsets) in the state store of its partials partition
(:mod:`monitor.scale.stored`); Quix then writes the store's changelog and
commits the partials offsets. A replica that takes a partition over restores
each model from there and reads the partials that followed: the same alerts
are raised again with the same ids, and the outbox and the alerts file
(:class:`~monitor.alerts.OnceJsonlAlertSink`) deliver each one once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import structlog
from prometheus_client import Counter

from monitor.alerts import AlertSink
from monitor.config import LimitsSettings
from monitor.envelope import Checkpoint, CheckpointError, seal
from monitor.messages import Message
from monitor.metrics import Metrics
from monitor.pipeline import Pipeline
from monitor.policy import Policy
from monitor.router import RouteResult
from monitor.scale.partials import Partial, read_partial, to_work
from monitor.scale.stored import FIX, KeyValues, load, open_checkpoint, save
from monitor.state import Mismatch, policy_digest, refuse, restore_pipeline

__all__ = ["JudgeStage"]

log = structlog.get_logger("shiftwatch.scale.judge")


class _NoDeadLetters:
    """The judge reads partials, not events: nothing of its own is ever dead-lettered."""

    def send(self, message: Message, rejection: object) -> None:
        raise AssertionError("the judge stage dead-letters nothing")

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass
class _Model:
    pipeline: Pipeline
    #: The partials partition the model's partials arrive on.
    partition: tuple[str, int]
    #: Input partition -> the last input offset applied.
    applied: dict[str, int] = field(default_factory=dict)


class JudgeStage:
    """Merges each model's partials and runs its detectors.

    Parameters
    ----------
    policy, limits
        The models watched (the same on every replica of both stages).
    sources
        Every input partition (``topic:partition``) of the event topics: each holds a
        model's watermark back until it has been heard from or is idle.
    alert_sinks, metrics
        Where alerts, verdicts and metrics go.
    store
        The state of a model (``topic``, ``partition`` of the partials, model name).
    signing_key, mismatch
        As for the ingest stage (:class:`~monitor.scale.ingest.IngestStage`).
    """

    def __init__(
        self,
        policy: Policy,
        limits: LimitsSettings,
        *,
        sources: Sequence[str],
        alert_sinks: Sequence[AlertSink],
        metrics: Metrics,
        store: Callable[[str, int, str], KeyValues],
        signing_key: bytes,
        mismatch: Mismatch = "fail",
    ) -> None:
        self.policy = policy
        self.limits = limits
        self.sources = list(sources)
        self.alert_sinks = list(alert_sinks)
        self.metrics = metrics
        self.store = store
        self.signing_key = signing_key
        self.mismatch = mismatch
        self._digest = policy_digest(policy)
        self._policies = {m.name: Policy(version=1, models=[m]) for m in policy.models}
        self._models: dict[str, _Model] = {}
        #: Partials partition -> the offset after the last one read here.
        self._next: dict[tuple[str, int], int] = {}
        self._unsaved: set[str] = set()
        # As the ingest stage's: a revoke's flush runs in a thread Quix may stop waiting for.
        self._lock = threading.Lock()
        self.partials = Counter(
            "shiftwatch_scale_partials",
            "Partials the judge read, by outcome: applied, repeated (every row already "
            "applied: produced again after an ingest restart) or refused (not a partial of "
            "this release, or of a model the policy does not list)",
            ["outcome"],
            registry=metrics.registry,
        )
        self.rows_repeated = Counter(
            "shiftwatch_scale_rows_repeated",
            "Events in partials the judge had already applied (dropped by input offset)",
            registry=metrics.registry,
        )
        for outcome in ("applied", "repeated", "refused"):
            self.partials.labels(outcome)

    def add(self, value: bytes, topic: str, partition: int, offset: int) -> None:
        """One partial read from the partials topic: judge its rows this replica lacks."""
        with self._lock:
            self._add(value, topic, partition, offset)

    def _add(self, value: bytes, topic: str, partition: int, offset: int) -> None:
        tp = (topic, partition)
        if offset < self._next.get(tp, 0):
            # Read again from the last commit (a partition taken away was dropped by
            # revoked()): its models go back to their saved state. Forward gaps are fine.
            self._forget(tp)
        self._next[tp] = offset + 1
        try:
            partial = read_partial(value)
        except ValueError as exc:
            self.partials.labels("refused").inc()
            log.error(
                "partial refused", partition=f"{topic}:{partition}", offset=offset, error=str(exc)
            )
            return
        model = self._model(partial.model, tp)
        if model is None:
            self.partials.labels("refused").inc()
            log.error(
                "partial of a model the policy does not list; are both stages on one policy?",
                model=partial.model,
                offset=offset,
            )
            return
        source = partial.source
        after = model.applied.get(source, -1)
        repeated = _rows_at_or_before(partial, after)
        if repeated:
            self.rows_repeated.inc(repeated)
        if partial.last <= after:
            self.partials.labels("repeated").inc()
            return  # produced again after an ingest restart: every row is counted already
        self.partials.labels("applied").inc()
        pipeline = model.pipeline
        work = to_work(partial, pipeline.router.tables[partial.model], after)
        pipeline.judge_routed(RouteResult(work={partial.model: work}), {source})
        model.applied[source] = partial.last
        self._unsaved.add(partial.model)

    def flush(self) -> None:
        """Save every model judged since the last checkpoint (called before Quix commits)."""
        with self._lock:
            self._save()

    def _save(self) -> None:
        for name in sorted(self._unsaved):
            model = self._models.get(name)
            if model is None:
                continue
            checkpoint = Checkpoint(
                policy=self._digest,
                state={"pipeline": model.pipeline.state()},
                positions={"applied": dict(model.applied)},
                saved_at=time.time(),
            )
            save(self.store(*model.partition, name), seal(checkpoint, self.signing_key))
        self._unsaved.clear()

    def revoked(self, topic: str, partition: int) -> None:
        """The partials partition went to another replica: its models' verdicts are withdrawn."""
        with self._lock:
            self._forget((topic, partition))
            self._next.pop((topic, partition), None)

    def close(self) -> None:
        for sink in self.alert_sinks:
            sink.close()

    # -- models ----------------------------------------------------------------------------
    def _forget(self, tp: tuple[str, int]) -> None:
        """Drop the models of a partials partition: they are restored from the store."""
        for name in [n for n, m in self._models.items() if m.partition == tp]:
            self._models.pop(name).pipeline.release()
            self._unsaved.discard(name)

    def _model(self, name: str, tp: tuple[str, int]) -> _Model | None:
        model = self._models.get(name)
        if model is not None:
            return model
        policy = self._policies.get(name)
        if policy is None:
            return None
        model = _Model(self._new_pipeline(policy), tp)
        blob = load(self.store(*tp, name))
        if blob is not None:
            where = f"the judge state of model {name}"
            try:
                checkpoint = open_checkpoint(blob, self.signing_key, self._digest)
                restore_pipeline(model.pipeline, checkpoint.state["pipeline"])
                model.applied = {str(k): int(v) for k, v in checkpoint.positions["applied"].items()}
            except (CheckpointError, KeyError, TypeError, ValueError) as exc:
                error = (
                    exc
                    if isinstance(exc, CheckpointError)
                    else CheckpointError("state", f"it does not restore ({type(exc).__name__})")
                )
                refuse(error, where=where, fix=FIX, mismatch=self.mismatch, fresh="empty detectors")
                model = _Model(self._new_pipeline(policy), tp)
            else:
                log.info("restored model state", model=name, applied=model.applied)
        model.pipeline.assigned(self.sources)
        self._models[name] = model
        return model

    def _new_pipeline(self, policy: Policy) -> Pipeline:
        return Pipeline(
            policy,
            dead_letters=_NoDeadLetters(),
            alert_sinks=self.alert_sinks,
            metrics=self.metrics,
            limits=self.limits,
            declare=False,
            quiet=True,
        )


def _rows_at_or_before(partial: Partial, offset: int) -> int:
    """How many of the partial's events were read at or before input ``offset``."""
    if partial.first > offset:
        return 0
    return sum(
        int((np.frombuffer(rows.offset, dtype="<i8") <= offset).sum())
        for rows in (partial.inferences, partial.actions, partial.outcomes)
    )
