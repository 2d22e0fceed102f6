"""What a sample of events holds: models, versions, segments, decisions, actions, tools, labels.

The ground truth for ``shiftwatch policy check --events`` (does the policy
match what the service really emits?) and ``shiftwatch policy init`` (a
starter policy from it). Only valid events count; the profile keeps counts
and value sets, capped, never payloads.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from monitor.events import ActionEvent, InferenceEvent, OutcomeEvent, Rejection, decode
from monitor.sources.file import iter_file_batches

__all__ = ["EventProfile", "ModelProfile"]

#: Distinct values remembered per field; more are counted but not named.
VALUE_CAP = 200


@dataclass
class ModelProfile:
    """Everything seen of one model."""

    versions: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    segments: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    #: action name -> count; (action, tool, privileged, status) -> count
    actions: Counter[str] = field(default_factory=Counter)
    calls: Counter[tuple[str, str | None, bool | None, str | None]] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    scores: int = 0
    latencies: int = 0

    def tools(self, *, privileged: bool | None = None) -> set[str]:
        return {
            tool
            for (_, tool, priv, _), _n in self.calls.items()
            if tool is not None and (privileged is None or priv is privileged)
        }

    def matching_actions(self, where: dict[str, str | bool]) -> int:
        """How many actions have every field value ``where`` asks for."""
        fields = ("action", "tool", "privileged", "status")
        return sum(
            n
            for call, n in self.calls.items()
            if all(dict(zip(fields, call, strict=True)).get(k) == v for k, v in where.items())
        )


@dataclass
class EventProfile:
    """Per model, what a sample of events held; plus the lines that were not valid events."""

    models: dict[str, ModelProfile] = field(default_factory=dict)
    lines: int = 0
    invalid: Counter[str] = field(default_factory=Counter)

    @classmethod
    def from_file(cls, path: str | Path, limit: int = 200_000) -> EventProfile:
        """Profile the first ``limit`` lines of a JSONL file (``-``: standard input)."""
        profile = cls()
        #: request_id -> model, to attribute outcomes that do not name theirs.
        owner: dict[str, str] = {}
        for batch in iter_file_batches(path, 5000):
            for message in batch:
                if profile.lines >= limit:
                    return profile
                profile.lines += 1
                event = decode(message.value)
                if isinstance(event, Rejection):
                    profile.invalid[event.code] += 1
                    continue
                profile._add(event, owner)
        return profile

    def _model(self, name: str) -> ModelProfile:
        if name not in self.models:
            self.models[name] = ModelProfile()
        return self.models[name]

    def _add(
        self, event: InferenceEvent | ActionEvent | OutcomeEvent, owner: dict[str, str]
    ) -> None:
        if isinstance(event, InferenceEvent):
            m = self._model(event.model)
            _count(m.versions, event.version)
            if event.decision is not None:
                _count(m.decisions, event.decision)
            for key, value in (event.segments or {}).items():
                _count(m.segments[key], value)
            m.scores += event.score is not None
            m.latencies += event.latency_ms is not None
            if len(owner) < 1_000_000:
                owner[event.request_id] = event.model
        elif isinstance(event, ActionEvent):
            m = self._model(event.model)
            _count(m.actions, event.action)
            call = (event.action, event.tool, event.privileged, event.status)
            if call in m.calls or len(m.calls) < VALUE_CAP:
                m.calls[call] += 1
        else:
            model = event.model or owner.get(event.request_id)
            if model is not None:
                _count(self._model(model).labels, event.label)


def _count(counter: Counter[str], value: str) -> None:
    if value in counter or len(counter) < VALUE_CAP:
        counter[value] += 1
