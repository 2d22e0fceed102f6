"""The policy file: tolerances agreed before a model change, with owners and actions.

``load_policy`` validates a YAML file with pydantic and raises
:class:`PolicyError` listing every problem with its field path and a fix, so
``shiftwatch policy check`` and the service's start-up say the same thing.
"""

from __future__ import annotations

import difflib
import math
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    WithJsonSchema,
    model_serializer,
    model_validator,
)

__all__ = [
    "Action",
    "Check",
    "FalseAlarm",
    "Metric",
    "ModelPolicy",
    "Policy",
    "PolicyError",
    "Tolerance",
    "load_policy",
    "parse_policy",
]

Name = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
]


#: Who is accountable: a team name (a :data:`Name`) or an email address.
Owner = Annotated[
    str,
    Field(
        min_length=1,
        max_length=254,
        pattern=r"^([A-Za-z0-9][A-Za-z0-9._:/-]*|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})$",
    ),
]


class Metric(StrEnum):
    """What a check compares between candidate and baseline (docs/policy.md, "Metrics")."""

    SCORE_DISTRIBUTION = "score_distribution"
    DECISION_RATE = "decision_rate"
    FALSE_NEGATIVE_RATE = "false_negative_rate"
    ACTION_RATE = "action_rate"
    TOOL_DISTRIBUTION = "tool_distribution"
    NOVEL_TOOL = "novel_tool"
    LATENCY = "latency"
    EXPECTED_FALSE_NEGATIVE_RATE = "expected_false_negative_rate"


#: Label ages judged by default: the horizon divided by these (1 h and 9 h of 3 days).
DEFAULT_AGE_DIVISORS = (72.0, 8.0)
#: At most this many label ages per model (each one takes a share of the false-alarm budget).
MAX_LABEL_AGES = 4

RATE_METRICS = frozenset({Metric.DECISION_RATE, Metric.FALSE_NEGATIVE_RATE, Metric.ACTION_RATE})
DISTANCE_METRICS = frozenset({Metric.SCORE_DISTRIBUTION, Metric.TOOL_DISTRIBUTION, Metric.LATENCY})
#: Metrics whose tolerance bounds a rate's shift: the rate checks and the label-free proxy.
SHIFT_METRICS = RATE_METRICS | {Metric.EXPECTED_FALSE_NEGATIVE_RATE}
#: Metrics that need negative_decisions and positive_labels.
LABEL_METRICS = frozenset({Metric.FALSE_NEGATIVE_RATE, Metric.EXPECTED_FALSE_NEGATIVE_RATE})


class Action(StrEnum):
    """What a breach asks for (docs/policy.md, "Actions and severity")."""

    ROLLBACK = "rollback"
    PAGE = "page"
    TICKET = "ticket"
    LOG = "log"


#: Fields of ``where`` each metric understands.
WHERE_FIELDS: dict[Metric, frozenset[str]] = {
    Metric.DECISION_RATE: frozenset({"decision"}),
    Metric.ACTION_RATE: frozenset({"action", "tool", "privileged", "status"}),
    Metric.NOVEL_TOOL: frozenset({"privileged", "action", "status"}),
    Metric.TOOL_DISTRIBUTION: frozenset({"privileged", "status"}),
}
#: The type of each ``where`` field, as events carry it (docs/events.md, strict types).
WHERE_TYPES: dict[str, type] = {
    "decision": str,
    "action": str,
    "tool": str,
    "status": str,
    "privileged": bool,
}


#: Separates a validator's message from its fix (see :func:`invalid`).
_FIX = " (fix: "


def invalid(message: str, fix: str) -> ValueError:
    """A validation error with its fix; ``message`` may start with the field it concerns,
    ``"where.privileged: ..."``, which then joins the field path."""
    return ValueError(f"{message}{_FIX}{fix})")


def did_you_mean(word: str, choices: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tolerance(_Strict):
    """How far the candidate may move from the baseline before a check breaches."""

    max_increase: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_decrease: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_relative_change: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_distance: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        shift = [self.max_increase, self.max_decrease, self.max_relative_change]
        if self.max_distance is not None and any(v is not None for v in shift):
            raise invalid(
                "max_distance cannot be combined with max_increase/max_decrease/"
                "max_relative_change",
                "use max_distance for distribution checks only",
            )
        if self.max_relative_change is not None and (
            self.max_increase is not None or self.max_decrease is not None
        ):
            raise invalid(
                "max_relative_change is already two-sided",
                "drop max_increase/max_decrease or write the two absolute bounds instead",
            )
        return self

    @property
    def is_empty(self) -> bool:
        return all(v is None for v in self.model_dump().values())


class Check(_Strict):
    """One tolerance on one metric, and what to do when it breaks."""

    name: Name
    metric: Metric
    # Values are checked against the type events carry in ``_consistent`` (one clear error
    # per field instead of one per union member).
    where: dict[str, Annotated[Any, WithJsonSchema({"type": ["string", "boolean"]})]] = Field(
        default_factory=dict
    )
    distance: Literal["ks", "js", "wasserstein"] | None = None
    tolerance: Tolerance = Field(default_factory=Tolerance)
    action: Action = Action.PAGE
    severity: Literal["critical", "warning", "info"] | None = None
    min_baseline_calls: int | None = Field(
        default=None,
        ge=1,
        description="novel_tool: baseline calls needed before an unseen tool counts as novel",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        allowed = WHERE_FIELDS.get(self.metric, frozenset())
        unknown = sorted(set(self.where) - allowed)
        if unknown:
            hint = ", ".join(sorted(allowed)) if allowed else "nothing: remove `where`"
            raise invalid(
                f"where.{unknown[0]}: {', '.join(unknown)} not understood by metric "
                f"{self.metric.value}{did_you_mean(unknown[0], allowed)}",
                f"it accepts {hint}",
            )
        for key, value in self.where.items():
            wanted = WHERE_TYPES[key]
            if type(value) is not wanted:
                example = "true or false" if wanted is bool else f'a string, e.g. "{value}"'
                raise invalid(
                    f"where.{key}: {value!r} is a {type(value).__name__}, but events carry "
                    f"{key} as a {wanted.__name__}, so it could never match",
                    f"write {example}",
                )
        if self.distance is not None and self.metric is not Metric.SCORE_DISTRIBUTION:
            raise invalid(
                "distance: applies to score_distribution only",
                f"remove it from this {self.metric.value} check",
            )
        tol = self.tolerance
        if self.metric in SHIFT_METRICS:
            if tol.max_distance is not None or tol.is_empty:
                raise invalid(
                    f"tolerance: a {self.metric.value} check needs max_increase, max_decrease "
                    "or max_relative_change",
                    "e.g. tolerance: {max_relative_change: 0.2}",
                )
        elif self.metric in DISTANCE_METRICS:
            if tol.max_distance is None:
                raise invalid(
                    f"tolerance: a {self.metric.value} check needs max_distance in (0, 1]",
                    "e.g. tolerance: {max_distance: 0.1}",
                )
        elif not tol.is_empty:
            raise invalid(
                "tolerance: novel_tool takes no tolerance (it fires on first sight)",
                "remove the tolerance",
            )
        if self.min_baseline_calls is not None and self.metric is not Metric.NOVEL_TOOL:
            raise invalid("min_baseline_calls: applies to novel_tool checks only", "remove it")
        return self

    @property
    def resolved_severity(self) -> str:
        if self.severity is not None:
            return self.severity
        return "critical" if self.action is Action.ROLLBACK else "warning"


#: Default of ``false_alarm.baseline_confidence``.
BASELINE_CONFIDENCE = 0.9


class FalseAlarm(_Strict):
    """The false-alarm budget for one model: every check and segment together."""

    arl0: float = Field(
        default=1_000_000,
        ge=100,
        allow_inf_nan=False,
        description="expected candidate inferences between false alarms",
    )
    baseline_confidence: float = Field(
        default=BASELINE_CONFIDENCE,
        ge=0.5,
        lt=1,
        allow_inf_nan=False,
        description=(
            "rate checks: probability, over the baseline's sample, that arl0 holds although "
            "the baseline's rate is estimated"
        ),
    )

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left out at its default, so a policy that does not set it dumps (and digests, see
        # monitor.state.policy_digest) as before the field existed: checkpoints still match.
        data: dict[str, Any] = handler(self)
        if self.baseline_confidence == BASELINE_CONFIDENCE:
            data.pop("baseline_confidence", None)
        return data


class ModelPolicy(_Strict):
    """Everything agreed for one model before its optimised version shipped."""

    name: Name
    owner: Owner
    baseline: Name
    candidates: list[Name] | None = None
    segments: list[Name] = Field(default_factory=list, max_length=16)
    negative_decisions: list[str] = Field(default_factory=list)
    positive_labels: list[str] = Field(default_factory=list)
    false_alarm: FalseAlarm = Field(default_factory=FalseAlarm)
    controls: list[str] = Field(default_factory=list)
    runbook_url: str | None = None
    action_window_seconds: float = Field(
        default=10.0,
        gt=0,
        le=86400,
        allow_inf_nan=False,
        description="how long after an inference its actions are still counted for action_rate",
    )
    label_horizon_seconds: float = Field(
        default=3 * 86400.0,
        gt=0,
        le=90 * 86400,
        allow_inf_nan=False,
        description=(
            "false_negative_rate counts only negative decisions older than this, so that labels "
            "still to come do not make a fresh candidate look better than it is"
        ),
    )
    label_ages_seconds: list[float] | None = Field(
        default=None,
        max_length=MAX_LABEL_AGES,
        description=(
            "false_negative_rate is also judged at these label ages (seconds, each below "
            "label_horizon_seconds), comparing candidate and baseline decisions at the same "
            "age; null: horizon/72 and horizon/8; []: at the horizon only"
        ),
    )
    checks: list[Check] = Field(min_length=1)

    @property
    def label_ages(self) -> tuple[float, ...]:
        """The label ages at which false-negative rates are judged before the horizon."""
        if self.label_ages_seconds is None:
            return tuple(self.label_horizon_seconds / d for d in DEFAULT_AGE_DIVISORS)
        return tuple(sorted(self.label_ages_seconds))

    @model_validator(mode="after")
    def _ages_below_horizon(self) -> Self:
        ages = self.label_ages_seconds or []
        horizon = self.label_horizon_seconds
        bad = [a for a in ages if not (math.isfinite(a) and 0 < a < horizon)]
        if bad:
            raise ValueError(
                f"label_ages_seconds: {bad} not in (0, label_horizon_seconds={horizon:g}); "
                "give ages below the horizon, or [] to judge at the horizon only"
            )
        if len(set(ages)) != len(ages):
            raise ValueError("label_ages_seconds: repeated age; list each age once")
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [c.name for c in self.checks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise invalid(f"checks: duplicate check names {dupes}", "give each check its own name")
        if self.candidates is not None and self.baseline in self.candidates:
            raise invalid(
                f"candidates: the baseline {self.baseline!r} cannot also be a candidate",
                "remove it from candidates",
            )
        labelled = [c.metric for c in self.checks if c.metric in LABEL_METRICS]
        if labelled and not (self.negative_decisions and self.positive_labels):
            raise invalid(
                f"a {labelled[0].value} check needs negative_decisions and positive_labels",
                "add e.g. negative_decisions: [allow] and positive_labels: [fraud]",
            )
        return self

    def watches(self, version: str) -> bool:
        """Whether ``version`` is a candidate under watch."""
        if version == self.baseline:
            return False
        return self.candidates is None or version in self.candidates


class Policy(_Strict):
    """A policy file: ``version: 1`` and a list of models."""

    version: Literal[1]
    models: list[ModelPolicy] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_models(self) -> Self:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise invalid(f"models: duplicate model names {dupes}", "list each model once")
        return self

    def model(self, name: str) -> ModelPolicy | None:
        for m in self.models:
            if m.name == name:
                return m
        return None


_FIXES: dict[str, str] = {
    "missing": "add this field",
    "extra_forbidden": (
        "remove it, or check its spelling against docs/policy.md or `shiftwatch schema policy`"
    ),
    "literal_error": "use one of the values listed",
    "enum": "use one of the values listed",
    "greater_than": "use a positive number",
    "greater_than_equal": "raise the value",
    "less_than_equal": "lower the value",
    "string_pattern_mismatch": "use letters, digits and . _ : / - only",
    "too_short": "add at least one entry",
}


class PolicyError(ValueError):
    """A policy that cannot be used; ``problems`` holds (field, message, fix) triples.

    ``locations`` holds, per problem, where the field is in the file (``line 7,
    column 12``), or ``""`` where that is not known.
    """

    def __init__(
        self,
        source: str,
        problems: list[tuple[str, str, str]],
        locations: list[str] | None = None,
    ) -> None:
        self.source = source
        self.problems = problems
        self.locations = locations or [""] * len(problems)
        lines = [f"{source}: {len(problems)} problem(s)"]
        for (field, msg, fix), at in zip(problems, self.locations, strict=True):
            where = f" ({at})" if at else ""
            lines.append(f"  {field}{where}: {msg}" + (f" (fix: {fix})" if fix else ""))
        super().__init__("\n".join(lines))


def _field_path(loc: tuple[int | str, ...], raw: Any) -> str:
    """Render a pydantic location naming list items, e.g. ``models[fraud].checks[fn].metric``."""
    path = ""
    node = raw
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            label = item.get("name") if isinstance(item, dict) else None
            path += f"[{label or part}]"
            node = item
        else:
            path += f".{part}" if path else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return path or "(file)"


#: Every field name a policy can have, for did-you-mean on a misspelt one.
def _field_names() -> set[str]:
    names: set[str] = set()
    for model in (Policy, ModelPolicy, Check, Tolerance, FalseAlarm):
        names |= set(model.model_fields)
    return names


_Marks = dict[tuple[int | str | None, ...], tuple[int, int]]


def _marks(text: str) -> _Marks:
    """Line and column (1-based) of every mapping value and list item in a YAML text."""
    marks: _Marks = {}

    def walk(node: yaml.Node, path: tuple[int | str | None, ...]) -> None:
        marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    walk(value, (*path, key.value))
                    # The key itself, under a None: where an unknown key is reported.
                    key_at = (key.start_mark.line + 1, key.start_mark.column + 1)
                    marks[(*path, key.value, None)] = key_at
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return marks
    if root is not None:
        walk(root, ())
    return marks


def _where(loc: tuple[int | str | None, ...], marks: _Marks) -> str:
    """``line L, column C`` of the longest prefix of ``loc`` the YAML text has, or ``""``."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in marks:
            line, col = marks[loc[:end]]
            return f"line {line}, column {col}"
    return ""


def _suggestion(error: Any) -> str:
    """A did-you-mean for a misspelt value or field name, or ``""``."""
    if error["type"] in ("enum", "literal_error") and isinstance(error.get("input"), str):
        expected = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        return did_you_mean(error["input"], expected)
    if error["type"] == "extra_forbidden" and error["loc"]:
        return did_you_mean(str(error["loc"][-1]), _field_names())
    return ""


def parse_policy(raw: Any, source: str = "<policy>", marks: _Marks | None = None) -> Policy:
    """Validate an already-parsed YAML document into a :class:`Policy`.

    ``marks`` (from the YAML text) add ``:line:col`` to each problem's field.
    """
    if raw is None:
        raise PolicyError(
            source,
            [
                (
                    "(file)",
                    "the policy is empty",
                    "start from `shiftwatch policy init --events FILE` or the example in "
                    "docs/policy.md",
                )
            ],
        )
    if not isinstance(raw, dict):
        raise PolicyError(
            source,
            [
                (
                    "(file)",
                    f"a policy is a mapping with `version: 1` and `models:`, not a "
                    f"{type(raw).__name__}",
                    "see the example in docs/policy.md",
                )
            ],
        )
    try:
        return Policy.model_validate(raw)
    except ValidationError as err:
        problems, locations = [], []
        for e in err.errors(include_url=False):
            loc = tuple(e["loc"])
            msg = e["msg"].removeprefix("Value error, ") + _suggestion(e)
            fix = _FIXES.get(e["type"], "")
            if _FIX in msg and msg.endswith(")"):
                msg, fix = msg[:-1].split(_FIX, 1)
            field = _field_path(loc, raw)
            head = re.match(r"^([a-z_]+(\.[A-Za-z0-9_]+)?): ", msg)
            if head and e["type"] == "value_error":  # "where.privileged: ...": a sub-field
                sub = head.group(1)
                field = f"{field}.{sub}" if field != "(file)" else sub
                msg = msg[head.end() :]
                loc = (*loc, *sub.split("."))
            problems.append((field, msg, fix))
            key = (None,) if e["type"] == "extra_forbidden" else ()
            locations.append(_where((*loc, *key), marks or {}))
        raise PolicyError(source, problems, locations) from None


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy YAML file.

    Raises
    ------
    PolicyError
        With every problem found, each with its field path, its line and column, and a fix.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(
            str(p), [("(file)", f"cannot read: {exc.strerror}", "check the path")]
        ) from None
    except UnicodeDecodeError as exc:
        raise PolicyError(
            str(p), [("(file)", f"not UTF-8 text (byte {exc.start})", "save the file as UTF-8")]
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PolicyError(
            str(p), [("(file)", f"not valid YAML: {problem}", "fix the YAML syntax there")], [at]
        ) from None
    return parse_policy(raw, str(p), _marks(text))
