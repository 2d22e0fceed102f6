"""shiftwatch / pipeline: is the monitor keeping up, and does every event reach a detector?

Event rates through the stages (consumed, processed, dead-lettered, late,
duplicates, unjoined, unmonitored), the consumer lag and the time to catch up,
batch time and size, the alert outbox, checkpoint age and cost, and the process itself.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import stat, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from dashboards.panels import DATASOURCE, MODEL, grid, last, query, variables

__all__ = ["pipeline"]

_RATE = "[$__rate_interval]"


def _rates(
    title: str, unit: str, pos: model.GridPos, *targets: tuple[str, str]
) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).datasource(DATASOURCE).unit(unit).grid_pos(pos)
    for i, (expr, legend) in enumerate(targets):
        panel = panel.with_target(query(expr, legend, chr(ord("A") + i)))
    return panel


def _panels() -> list[timeseries.Panel | stat.Panel]:
    flow = _rates(
        "Events: consumed, processed, dead-lettered, late",
        "reqps",
        grid(0, 0, 12, 8),
        (f"sum(rate(shiftwatch_events_consumed_total{_RATE}))", "consumed"),
        (f"sum(rate(shiftwatch_events_processed_total{_RATE}))", "processed"),
        (f"sum(rate(shiftwatch_events_dead_lettered_total{_RATE}))", "dead-lettered"),
        (f"sum(rate(shiftwatch_events_late_total{{{MODEL}}}{_RATE}))", "late"),
    )
    dropped = _rates(
        "Events not counted by a detector, by reason",
        "reqps",
        grid(12, 0, 12, 8),
        (
            f"sum by (code) (rate(shiftwatch_events_dead_lettered_total{_RATE}))",
            "dead-lettered {{code}}",
        ),
        (
            f"sum by (reason) (rate(shiftwatch_events_late_total{{{MODEL}}}{_RATE}))",
            "late {{reason}}",
        ),
        (f"sum by (kind) (rate(shiftwatch_events_duplicate_total{_RATE}))", "duplicate {{kind}}"),
        (f"sum by (kind) (rate(shiftwatch_events_unjoined_total{_RATE}))", "unjoined {{kind}}"),
        (
            f"sum by (kind) (rate(shiftwatch_events_unmonitored_total{_RATE}))",
            "unmonitored {{kind}}",
        ),
    )
    lag = _rates(
        "Consumer lag",
        "short",
        grid(0, 8, 12, 8),
        ("sum by (topic, partition) (shiftwatch_consumer_lag_messages)", "{{topic}}:{{partition}}"),
    )
    catch_up = _rates(
        "Time to catch up at the current consume rate",
        "s",
        grid(12, 8, 12, 8),
        (
            "sum by (instance) (shiftwatch_consumer_lag_messages)"
            f" / sum by (instance) (rate(shiftwatch_events_consumed_total{_RATE}))",
            "{{instance}}",
        ),
    )
    batch_time = _rates(
        "Batch processing time",
        "s",
        grid(0, 16, 12, 8),
        *(
            (
                f"histogram_quantile({q}, sum by (le) (rate(shiftwatch_batch_processing_seconds_bucket{_RATE})))",
                f"p{round(q * 100)}",
            )
            for q in (0.5, 0.99)
        ),
    )
    batch_size = _rates(
        "Messages per batch",
        "short",
        grid(12, 16, 12, 8),
        (
            f"sum(rate(shiftwatch_batch_messages_sum{_RATE})) / sum(rate(shiftwatch_batch_messages_count{_RATE}))",
            "mean",
        ),
    )
    outbox = _rates(
        "Alert outbox backlog and deliveries",
        "short",
        grid(0, 24, 12, 8),
        ("sum by (sink) (shiftwatch_outbox_pending)", "pending {{sink}}"),
        (
            f"sum by (sink, result) (rate(shiftwatch_alert_deliveries_total{_RATE}))",
            "delivered/s {{sink}} {{result}}",
        ),
    )
    process = _rates(
        "Process: CPU and memory",
        "short",
        grid(12, 24, 12, 8),
        (
            f'rate(process_cpu_seconds_total{{job=~".*shiftwatch.*"}}{_RATE})',
            "CPU cores {{instance}}",
        ),
        ('process_resident_memory_bytes{job=~".*shiftwatch.*"} / 2^20', "RSS MiB {{instance}}"),
    )
    connected = (
        stat.Panel()
        .title("Source connected")
        .reduce_options(last())
        .datasource(DATASOURCE)
        .with_target(query("min(shiftwatch_source_connected)", "connected"))
        .mappings(
            [
                model.ValueMap(
                    options={
                        "0": model.ValueMappingResult(text="disconnected", color="red", index=0),
                        "1": model.ValueMappingResult(text="consuming", color="green", index=1),
                    }
                )
            ]
        )
        .grid_pos(grid(0, 32, 12, 5))
    )
    build = (
        stat.Panel()
        .title("Build")
        .reduce_options(last())
        .text_mode(common.BigValueTextMode.NAME)
        .datasource(DATASOURCE)
        .with_target(
            query(
                "count by (version, python) (shiftwatch_build_info)",
                "shiftwatch {{version}}, Python {{python}}",
            )
        )
        .grid_pos(grid(12, 32, 12, 5))
    )
    checkpoint_age = _rates(
        "Checkpoint age (a restart replays at most this much)",
        "s",
        grid(0, 37, 12, 8),
        (
            "time() - max(shiftwatch_checkpoint_last_success_timestamp_seconds > 0)",
            "since the last checkpoint",
        ),
    )
    checkpoint_cost = _rates(
        "Checkpoint cost",
        "s",
        grid(12, 37, 12, 8),
        (
            "histogram_quantile(0.5, sum by (le) "
            f"(rate(shiftwatch_checkpoint_seconds_bucket{_RATE})))",
            "p50 seconds per checkpoint",
        ),
        (
            "histogram_quantile(0.99, sum by (le) "
            f"(rate(shiftwatch_checkpoint_seconds_bucket{_RATE})))",
            "p99 seconds per checkpoint",
        ),
        (f"sum(rate(shiftwatch_checkpoint_failures_total{_RATE}))", "failures/s"),
    )
    return [
        flow,
        dropped,
        lag,
        catch_up,
        batch_time,
        batch_size,
        outbox,
        process,
        connected,
        build,
        checkpoint_age,
        checkpoint_cost,
    ]


def pipeline() -> dash.Dashboard:
    """The pipeline dashboard."""
    board = (
        dash.Dashboard("shiftwatch / pipeline")
        .uid("shiftwatch-pipeline")
        .tags(["shiftwatch"])
        .description("Is shiftwatch keeping up, and does every event reach a detector?")
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .editable()
    )
    for v in variables(segment=False):
        board = board.with_variable(v)
    for p in _panels():
        board = board.with_panel(p)
    return board
