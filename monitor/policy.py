"""The policy file: tolerances agreed before a model change, with owners and actions.

``load_policy`` validates a YAML file with pydantic and raises
:class:`PolicyError` listing every problem with its field path and a fix, so
``shiftwatch policy check`` and the service's start-up say the same thing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from monitor.policy_errors import (
    Marks,
    PolicyError,
    invalid,
    problems,
    yaml_marks,
)
from monitor.suggest import did_you_mean
from monitor.vocabulary import (
    DEFAULT_AGE_DIVISORS,
    DISTANCE_METRICS,
    LABEL_METRICS,
    MAX_LABEL_AGES,
    SHIFT_METRICS,
    WHERE_FIELDS,
    WHERE_TYPES,
    Action,
    Metric,
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


#: Every field name a policy can have, for did-you-mean on a misspelt one.
def _field_names() -> set[str]:
    names: set[str] = set()
    for model in (Policy, ModelPolicy, Check, Tolerance, FalseAlarm):
        names |= set(model.model_fields)
    return names


def parse_policy(raw: Any, source: str = "<policy>", marks: Marks | None = None) -> Policy:
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
        found, locations = problems(err, raw, marks or {}, _field_names())
        raise PolicyError(source, found, locations) from None


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
    return parse_policy(raw, str(p), yaml_marks(text))
