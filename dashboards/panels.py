"""What both dashboards share: the datasource, the template variables, the panel helpers.

Every query goes to the dashboard's ``$datasource`` and filters with the
variables ``$model``, ``$version`` and ``$segment`` (regular expressions, all
values by default), so :func:`queries` can list them for the test that runs
each against a real Prometheus.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.models import dashboard as model

__all__ = [
    "DATASOURCE",
    "MODEL",
    "SEGMENT",
    "VERSION",
    "grid",
    "last",
    "query",
    "variables",
]

#: The Prometheus datasource chosen in the ``datasource`` variable.
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
#: Label matchers of the template variables, for a selector's braces.
MODEL = 'model=~"$model"'
VERSION = 'version=~"$version"'
SEGMENT = 'segment=~"$segment"'


def query(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    """A range query on ``$datasource`` with a legend."""
    q = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE).range()
    return q.legend_format(legend) if legend else q


def last() -> common_builders.ReduceDataOptions:
    """A stat's or bar gauge's value: the newest non-null point of each series."""
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def grid(x: int, y: int, w: int, h: int) -> model.GridPos:
    return model.GridPos(x=x, y=y, w=w, h=h)


def _labels(name: str, label: str, expr: str, *, every: bool) -> dash.QueryVariable:
    v = (
        dash.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query({"query": f"label_values({expr}, {name})", "refId": f"{name}-values"})
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
    )
    return v.all_value(".*") if every else v


def variables(*, segment: bool) -> list[dash.QueryVariable | dash.DatasourceVariable]:
    """``datasource``, ``model``, ``version`` and (on the on-call board) ``segment``.

    ``segment``'s All is ``.*``, which also matches the overall stream (an empty
    label, which ``label_values`` cannot list).
    """
    out: list[dash.QueryVariable | dash.DatasourceVariable] = [
        dash.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        _labels("model", "Model", "shiftwatch_check_info", every=True),
        _labels("version", "Version", f"shiftwatch_check_info{{{MODEL}}}", every=True),
    ]
    if segment:
        out.append(
            _labels(
                "segment",
                "Segment",
                f"shiftwatch_check_state{{{MODEL}, {VERSION}}}",
                every=True,
            )
        )
    return out
