"""``scale.*``: the engine that runs shiftwatch, and the two-stage tier's topics and cadence."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from monitor.config_errors import EXPLAINED

__all__ = ["ScaleSettings"]


class ScaleSettings(BaseModel):
    """``engine: embedded`` is one process; ``engine: quix`` one stage of the two-stage tier.

    See ``docs/scale.md``: the ``ingest`` stage reads the event topics with any
    number of replicas and hands each model's routed events to the ``judge``
    stage through ``partials_topic``, keyed by model.
    """

    model_config = ConfigDict(extra="forbid")

    engine: Literal["embedded", "quix"] = Field(
        default="embedded",
        description="embedded: one process (kafka-python or confluent, SQLite state); "
        "quix: one stage of the two-stage tier on Quix Streams (pip install 'shiftwatch[scale]')",
    )
    stage: Literal["ingest", "judge"] | None = Field(
        default=None, description="with engine quix: which stage this process runs"
    )
    partials_topic: str = Field(
        default="shiftwatch.partials",
        min_length=1,
        description="the topic the ingest stage writes each model's routed events to",
    )
    partials_partitions: int = Field(
        default=6, ge=1, le=10_000, description="partitions of partials_topic, if it is created"
    )
    state_dir: Path = Field(
        default=Path("shiftwatch-state"),
        description="the stage's local state (RocksDB), restored from its changelog topics",
    )
    commit_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="how often a stage saves its state and commits its input offsets",
    )
    emit_seconds: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="ingest: how often each partition's routed events are handed on",
    )
    emit_events: int = Field(
        default=5000,
        ge=1,
        le=1_000_000,
        description="ingest: hand a partition's events on once this many are waiting",
    )

    @model_validator(mode="after")
    def _stage_named(self) -> ScaleSettings:
        if self.engine == "quix" and self.stage is None:
            raise PydanticCustomError(
                EXPLAINED,
                "scale.engine quix runs one stage per process: set scale.stage to ingest "
                "(reads the event topics) or judge (runs the detectors), e.g. --stage ingest",
            )
        if self.engine == "embedded" and self.stage is not None:
            raise PydanticCustomError(
                EXPLAINED,
                f"scale.stage {self.stage} needs scale.engine quix (--engine quix); the embedded "
                "engine runs both stages in one process",
            )
        return self
