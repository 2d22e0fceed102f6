"""Grafana dashboards for shiftwatch, built with grafana-foundation-sdk.

``python -m dashboards.build`` writes each dashboard's JSON to
``dashboards/json/`` (mounted by the compose stack) and to
``helm/shiftwatch/dashboards/`` (the chart's dashboard ConfigMaps); the JSON
is committed and a test checks it is current.
"""

from __future__ import annotations

from dashboards.oncall import oncall
from dashboards.pipeline import pipeline

__all__ = ["DASHBOARDS", "oncall", "pipeline"]

#: File stem -> builder of every shipped dashboard.
DASHBOARDS = {"shiftwatch-oncall": oncall, "shiftwatch-pipeline": pipeline}
