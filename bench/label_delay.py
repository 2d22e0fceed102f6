"""Time to alert and time to `pass` with slow labels: equal-age judging vs the horizon only.

For each mean label delay and seed, one stream of simulated canary traffic
(``monitor.demo.label_delay``: 20 inferences/s, half to the candidate, FN 1%,
the baseline watched alone at 1 request/s for a horizon before the canary) is
fed, batch by batch, to two pipelines side by side: one whose policy judges
``false_negative_rate`` at the default label ages (horizon / 72 and
horizon / 8) and one with ``label_ages_seconds: []`` (the horizon only). Two
scenarios: the candidate's FN rate five times the baseline's in a segment of
10% of traffic (event time from the canary's start to the first alert), and
no change (event time to the first `pass` verdict). The gate estimate of
``shiftwatch policy check --events-per-second`` is printed beside them.

    python bench/label_delay.py [--seeds 3] [--delays 1800,7200] [--horizon 28800]
    python bench/label_delay.py --overhead [--repeats 5]

Prints a Markdown table of medians over the seeds. ``--overhead`` instead
times the pipeline over the demo's traffic (60,000 requests, the demo
policy) with its default label ages and with ``label_ages_seconds: []``,
alternating, and prints the median ratio of the two.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.demo.label_delay import LabelDelayTraffic
from monitor.demo.simulator import Scenario, TrafficSimulator
from monitor.gate_estimate import Traffic, check_estimate, format_duration
from monitor.messages import Message
from monitor.pipeline import Pipeline
from monitor.policy import load_policy, parse_policy
from monitor.replay import LogDeadLetterSink

CANARY_GOAL = 3 * 3600.0


def _policy(horizon: float, ages: list[float] | None) -> dict[str, Any]:
    return {
        "version": 1,
        "models": [
            {
                "name": "fraud-scorer",
                "owner": "fraud-ml-oncall",
                "baseline": "v7-fp32",
                "candidates": ["v7-int8"],
                "segments": ["tier"],
                "negative_decisions": ["allow"],
                "positive_labels": ["fraud"],
                "label_horizon_seconds": horizon,
                "label_ages_seconds": ages,
                "checks": [
                    {
                        "name": "fn-proxy",
                        "metric": "false_negative_rate",
                        "tolerance": {"max_increase": 0.01},
                        "action": "rollback",
                    }
                ],
            }
        ],
    }


def _side_by_side(traffic: LabelDelayTraffic, horizon: float, goal: str) -> list[float]:
    """Seconds from the canary's start to the goal (alert or pass), per pipeline."""
    pipelines = [
        Pipeline(
            parse_policy(_policy(horizon, ages)),
            dead_letters=LogDeadLetterSink(),
            clock="event",
            quiet=True,
        )
        for ages in (None, [])
    ]
    reached = [float("inf"), float("inf")]
    events = traffic.events()
    start = traffic.start.timestamp()
    for i in range(0, len(events), 5000):
        chunk = events[i : i + 5000]
        batch = [Message(json.dumps(e).encode(), "b", 0, i + j) for j, e in enumerate(chunk)]
        now = datetime.fromisoformat(str(chunk[-1]["time"])).timestamp() - start
        for n, pipeline in enumerate(pipelines):
            if reached[n] < float("inf"):
                continue
            result = pipeline.process(batch)
            if goal == "alert" and result.alerts:
                fired = datetime.fromisoformat(result.alerts[0].event_time)
                reached[n] = fired.timestamp() - start
            verdict = pipeline.verdicts.get("fraud-scorer", "v7-int8")
            if goal == "pass" and verdict is not None and verdict["verdict"] == "pass":
                reached[n] = now
        if all(r < float("inf") for r in reached):
            break
    return reached


def overhead(repeats: int) -> None:
    """Pipeline time with the default label ages over time with none, on the demo's traffic."""
    sim = TrafficSimulator(Scenario(seed=3, requests_per_second=300.0))
    events: list[Any] = []
    while sim.requests < 60_000:
        events.extend(sim.next_batch(1000))
    messages = [Message(json.dumps(e).encode(), "o", 0, i) for i, e in enumerate(events)]
    base = load_policy(Path(__file__).resolve().parent.parent / "monitor/demo/policy.yaml")
    model = base.models[0]
    variants = {
        "default ages": base,
        "no ages": base.model_copy(
            update={"models": [model.model_copy(update={"label_ages_seconds": []})]}
        ),
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, policy in variants.items():
            pipeline = Pipeline(policy, dead_letters=LogDeadLetterSink(), quiet=True)
            started = time.perf_counter()
            for i in range(0, len(messages), 5000):
                pipeline.process(messages[i : i + 5000])
            seconds[name].append(time.perf_counter() - started)
    ratios = [a / b for a, b in zip(seconds["default ages"], seconds["no ages"], strict=True)]
    for name, values in seconds.items():
        print(f"{name}: median {statistics.median(values):.2f} s over {len(messages):,} events")
    print(
        f"ratio default ages / no ages: median {statistics.median(ratios):.3f} "
        f"(runs {', '.join(f'{r:.3f}' for r in ratios)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--delays", default="1800,7200", help="mean label delays, seconds")
    parser.add_argument("--horizon", type=float, default=8 * 3600.0)
    parser.add_argument("--overhead", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.overhead:
        overhead(args.repeats)
        return
    horizon = args.horizon
    print(
        "| mean label delay | scenario | equal-age (default ages) | horizon only | gate "
        "estimate | equal-age within 3 h |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for delay in (float(d) for d in args.delays.split(",")):
        base = LabelDelayTraffic(
            duration_seconds=horizon + 1800.0,
            label_delay_seconds=delay,
            baseline_lead_seconds=horizon,
            lead_requests_per_second=1.0,
        )
        model = parse_policy(_policy(horizon, None)).models[0]
        estimate = check_estimate(
            model, model.checks[0], Traffic(20.0, 0.5, 0.9, 0.01, delay)
        ).split(" (")[0]
        for goal, factor in (("alert", 0.05), ("pass", 0.01)):
            runs = [
                _side_by_side(
                    replace(base, seed=seed, candidate_segment_fn_rate=factor), horizon, goal
                )
                for seed in range(1, args.seeds + 1)
            ]
            early = statistics.median(r[0] for r in runs)
            late = statistics.median(r[1] for r in runs)
            scenario = (
                "FN 1% -> 5% in 10% of traffic: alert" if goal == "alert" else ("no change: `pass`")
            )
            shown = estimate if goal == "pass" else "-"
            verdict = "pass" if early <= CANARY_GOAL else "fail"
            end = f"> {format_duration(base.duration_seconds)} (run end)"
            early_text = format_duration(early) if early < float("inf") else end
            late_text = format_duration(late) if late < float("inf") else end
            print(
                f"| {format_duration(delay)} | {scenario} | {early_text} | "
                f"{late_text} | {shown} | {verdict} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
