"""shiftwatch / on-call: per model and version, which check is breaking, where, since
when, and how sure we are.

Top to bottom: the decision (rollback required, stale candidate, freshness),
each check's state per segment, each check's observed value against its
allowed band in the metric's own units, the evidence against its threshold,
the data behind it and how far an inconclusive check is from conclusive, then
what the candidate does differently (false negatives, actions, scores,
latency) and how much traffic it gets. Alerts are annotations.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, stat, statetimeline, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from dashboards.panels import DATASOURCE, MODEL, SEGMENT, VERSION, grid, last, query, variables

__all__ = ["CHECK", "oncall"]

CHECK = 'check=~"$check"'
_SEL = f"{MODEL}, {VERSION}, {SEGMENT}"
#: Joins a per-check series to the checks of one metric family (info of many replicas collapsed).
_OF_METRIC = (
    " * on(model, version, check) group_left() "
    'group by (model, version, check) (shiftwatch_check_info{{{sel}, metric=~"{metric}"}})'
)
_MEAN_LATENCY = (
    f"sum by (model, version) (rate(shiftwatch_inference_latency_seconds_total{{{MODEL}}}[$__rate_interval]))"
    f" / sum by (model, version) (rate(shiftwatch_inference_latency_observations_total{{{MODEL}}}[$__rate_interval]))"
)
#: The baseline is the version with traffic that no check names as a candidate.
_CANDIDATES = "group by (model, version) (shiftwatch_check_info)"


def _state_mappings() -> list[model.ValueMapping]:
    return [
        model.ValueMap(
            options={
                "0": model.ValueMappingResult(text="ok", color="green", index=0),
                "1": model.ValueMappingResult(text="inconclusive", color="yellow", index=1),
                "2": model.ValueMappingResult(text="breach", color="red", index=2),
            }
        )
    ]


def _yes_no(yes: str, colour: str) -> list[model.ValueMapping]:
    return [
        model.ValueMap(
            options={
                "0": model.ValueMappingResult(text="no", color="green", index=0),
                "1": model.ValueMappingResult(text=yes, color=colour, index=1),
            }
        )
    ]


def _of(metric: str, series: str) -> str:
    return f"{series}{{{_SEL}}}" + _OF_METRIC.format(sel=f"{MODEL}, {VERSION}", metric=metric)


def _versus(title: str, metric: str, unit: str, pos: model.GridPos) -> timeseries.Panel:
    """Candidate (observed) against baseline (reference) for the checks of ``metric``."""
    return (
        timeseries.Panel()
        .title(title)
        .description(
            "Each check of these metrics: the candidate's observed value (solid) and the "
            "baseline's reference (dashed), per segment."
        )
        .datasource(DATASOURCE)
        .unit(unit)
        .with_target(
            query(_of(metric, "shiftwatch_check_observed"), "{{version}} {{check}} {{segment}}")
        )
        .with_target(
            query(_of(metric, "shiftwatch_check_reference"), "baseline {{check}} {{segment}}", "B")
        )
        .override_by_regexp(
            "^baseline.*",
            [
                model.DynamicConfigValue(
                    id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
                )
            ],
        )
        .grid_pos(pos)
    )


def _header() -> list[dash.Panel | timeseries.Panel | stat.Panel]:
    rollback = (
        stat.Panel()
        .title("Rollback required")
        .description(
            "1 while a check whose action is rollback is breached: roll back to the baseline."
        )
        .datasource(DATASOURCE)
        .with_target(
            query(
                f"max by (model, version) (shiftwatch_rollback_required{{{MODEL}, {VERSION}}})",
                "{{model}} {{version}}",
            )
        )
        .mappings(_yes_no("ROLL BACK", "red"))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .reduce_options(last())
        .grid_pos(grid(0, 0, 6, 6))
    )
    stale = (
        stat.Panel()
        .title("Candidate stale (no traffic)")
        .description(
            "1 while the candidate's newest inference trails its model's by more than "
            "limits.stale_after_seconds: its states below are as of its last data."
        )
        .datasource(DATASOURCE)
        .with_target(
            query(
                f"max by (model, version) (shiftwatch_candidate_stale{{{MODEL}, {VERSION}}})",
                "{{model}} {{version}}",
            )
        )
        .mappings(_yes_no("STALE", "orange"))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .reduce_options(last())
        .grid_pos(grid(6, 0, 6, 6))
    )
    freshness = (
        timeseries.Panel()
        .title("Freshness: age of the newest event and of the watermark")
        .description(
            "Wall-clock seconds since the event time of each version's newest inference, and of the model's watermark (buckets before it are judged)."
        )
        .datasource(DATASOURCE)
        .unit("s")
        .with_target(
            query(
                f"time() - shiftwatch_last_event_timestamp_seconds{{{MODEL}}}",
                "{{version}} newest event",
            )
        )
        .with_target(
            query(
                f"time() - shiftwatch_watermark_timestamp_seconds{{{MODEL}}}",
                "{{model}} watermark",
                "B",
            )
        )
        .grid_pos(grid(12, 0, 12, 6))
    )
    return [rollback, stale, freshness]


def _checks() -> list[statetimeline.Panel | timeseries.Panel | bargauge.Panel]:
    states = (
        statetimeline.Panel()
        .title("Check state by segment")
        .description(
            "ok, inconclusive (too little data) or breach, per check and segment (empty: overall)."
        )
        .datasource(DATASOURCE)
        .with_target(
            query(
                f"max by (check, segment) (shiftwatch_check_state{{{_SEL}, {CHECK}}})",
                "{{check}} {{segment}}",
            )
        )
        .mappings(_state_mappings())
        .show_value(common.VisibilityMode.NEVER)
        .grid_pos(grid(0, 6, 24, 9))
    )
    band = (
        timeseries.Panel()
        .title("$check: observed against the allowed band")
        .description(
            "The candidate's value of the check's metric (a rate, a distance) and the band the "
            "policy allows, in the same units: a rate check's tolerance around the baseline's "
            "rate (widened by its standard error), 0 to max_distance for a distance."
        )
        .datasource(DATASOURCE)
        .repeat("check")
        .max_per_row(2)
        .with_target(query(f"shiftwatch_check_observed{{{_SEL}, {CHECK}}}", "{{segment}} observed"))
        .with_target(
            query(
                f"shiftwatch_check_allowed_lower{{{_SEL}, {CHECK}}}",
                "{{segment}} allowed from",
                "B",
            )
        )
        .with_target(
            query(
                f"shiftwatch_check_allowed_upper{{{_SEL}, {CHECK}}}", "{{segment}} allowed to", "C"
            )
        )
        .with_target(
            query(f"shiftwatch_check_reference{{{_SEL}, {CHECK}}}", "{{segment}} baseline", "D")
        )
        .override_by_regexp(
            ".*allowed.*",
            [
                model.DynamicConfigValue(
                    id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
                )
            ],
        )
        .grid_pos(grid(0, 15, 12, 8))
    )
    evidence = (
        timeseries.Panel()
        .title("Evidence against threshold")
        .description(
            "The detector's statistic divided by its threshold: at 1 the check breaches. How far above says how sure, not how big the shift is."
        )
        .datasource(DATASOURCE)
        .unit("x")
        .with_target(
            query(
                f"shiftwatch_check_statistic{{{_SEL}, {CHECK}}} / shiftwatch_check_threshold{{{_SEL}, {CHECK}}}",
                "{{check}} {{segment}}",
            )
        )
        .thresholds(
            dash.ThresholdsConfig()
            .mode(model.ThresholdsMode.ABSOLUTE)
            .steps(
                [
                    model.Threshold(value=None, color="green"),
                    model.Threshold(value=1.0, color="red"),
                ]
            )
        )
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE)
        )
        .grid_pos(grid(12, 15, 12, 8))
    )
    samples = (
        timeseries.Panel()
        .title("Sample counts")
        .description("Observations behind each check, candidate and baseline.")
        .datasource(DATASOURCE)
        .unit("short")
        .with_target(
            query(f"shiftwatch_check_samples{{{_SEL}, {CHECK}}}", "{{check}} {{segment}} {{side}}")
        )
        .grid_pos(grid(0, 23, 12, 8))
    )
    conclusive = (
        bargauge.Panel()
        .title("How far from conclusive")
        .description(
            "Observations seen over those needed before the test runs, the lesser side of each check (100%: enough data)."
        )
        .datasource(DATASOURCE)
        .unit("percentunit")
        .min(0)
        .max(1)
        .reduce_options(last())
        .with_target(
            query(
                "min by (check, segment) (clamp_max("
                f"shiftwatch_check_samples{{{_SEL}, {CHECK}}} / shiftwatch_check_samples_needed{{{_SEL}, {CHECK}}}, 1))",
                "{{check}} {{segment}}",
            )
        )
        .grid_pos(grid(12, 23, 12, 8))
    )
    return [states, band, evidence, samples, conclusive]


def _behaviour() -> list[timeseries.Panel]:
    per_inference = (
        timeseries.Panel()
        .title("Actions per inference, by version")
        .description(
            "Actions (tool calls, escalations, …) per inference, baseline and candidates, from the events routed."
        )
        .datasource(DATASOURCE)
        .unit("short")
        .with_target(
            query(
                f'sum by (version) (rate(shiftwatch_model_events_total{{{MODEL}, kind="action"}}[$__rate_interval]))'
                f' / sum by (version) (rate(shiftwatch_model_events_total{{{MODEL}, kind="inference"}}[$__rate_interval]))',
                "{{version}}",
            )
        )
        .grid_pos(grid(16, 31, 8, 8))
    )
    latency = (
        timeseries.Panel()
        .title("Latency gained by the optimisation")
        .description(
            "The baseline's mean serving latency minus each candidate's (positive: the candidate is faster), and the means."
        )
        .datasource(DATASOURCE)
        .unit("s")
        .with_target(
            query(
                f"({_MEAN_LATENCY} unless on(model, version) {_CANDIDATES})"
                f" - on(model) group_right() ({_MEAN_LATENCY} and on(model, version) {_CANDIDATES})",
                "gained by {{version}}",
            )
        )
        .with_target(query(_MEAN_LATENCY, "mean {{version}}", "B"))
        .grid_pos(grid(8, 39, 8, 8))
    )
    split = (
        timeseries.Panel()
        .title("Canary traffic split")
        .description("Inferences per second by version, stacked to 100%.")
        .datasource(DATASOURCE)
        .unit("percentunit")
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.PERCENT))
        .fill_opacity(60)
        .with_target(
            query(
                f'sum by (version) (rate(shiftwatch_model_events_total{{{MODEL}, kind="inference"}}[$__rate_interval]))',
                "{{version}}",
            )
        )
        .grid_pos(grid(16, 39, 8, 8))
    )
    return [
        _versus(
            "False-negative proxy: candidate vs baseline",
            "false_negative_rate",
            "percentunit",
            grid(0, 31, 8, 8),
        ),
        _versus(
            "Action rates (escalations, tool use): candidate vs baseline",
            "action_rate",
            "short",
            grid(8, 31, 8, 8),
        ),
        per_inference,
        _versus("Score-distribution distance", "score_distribution", "short", grid(0, 39, 8, 8)),
        latency,
        split,
    ]


def _annotations() -> list[dash.AnnotationQuery]:
    return [
        dash.AnnotationQuery()
        .name("Prometheus alerts")
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color("red")
        .expr(f'ALERTS{{alertname=~"Shiftwatch.*", alertstate="firing", {MODEL}}}'),
        dash.AnnotationQuery()
        .name("shiftwatch alerts raised")
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color("orange")
        .expr(
            f"sum by (model, action, status) (increase(shiftwatch_alerts_total{{{MODEL}}}[$__rate_interval])) > 0"
        ),
    ]


def oncall() -> dash.Dashboard:
    """The on-call dashboard."""
    check = (
        dash.QueryVariable("check")
        .label("Check")
        .datasource(DATASOURCE)
        .query(
            {
                "query": f"label_values(shiftwatch_check_info{{{MODEL}, {VERSION}}}, check)",
                "refId": "check-values",
            }
        )
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )
    board = (
        dash.Dashboard("shiftwatch / on-call")
        .uid("shiftwatch-oncall")
        .tags(["shiftwatch"])
        .description(
            "Per model and version: which check is breaking, in which segment, since when, and how sure we are."
        )
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .editable()
    )
    for v in [*variables(segment=True), check]:
        board = board.with_variable(v)
    for a in _annotations():
        board = board.annotation(a)
    for p in [*_header(), *_checks(), *_behaviour()]:
        board = board.with_panel(p)
    return board
