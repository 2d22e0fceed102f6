"""``shiftwatch review`` and ``shiftwatch review sign``: the weekly report, the owner's decision.

``review`` reads the history a monitor wrote into its state directory
(``--state``), or a Prometheus server that scraped it (``--prometheus``),
and writes the report as HTML or Markdown. ``review sign`` records the
model owner's decision in the history; the next report shows it.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Final

import structlog

from monitor.history.rows import HistorySource, SignOff
from monitor.history.store import LATENCY_EDGES_MS, HistoryStore, history_file
from monitor.policy import load_policy
from monitor.review.build import ReviewError, build_review
from monitor.review.period import parse_duration, parse_until
from monitor.review.promql import PrometheusError

__all__ = ["add_review_command", "review_command"]

EXIT_USAGE: Final = 2
DECISIONS: Final = ("accept", "rollback", "retune")
#: Points a Prometheus range query asks for over the period.
PROMETHEUS_POINTS: Final = 720

log = structlog.get_logger("shiftwatch.review")


def add_review_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``review`` (and ``review sign``) to the command line."""
    p = sub.add_parser(
        "review",
        help="write the weekly review of a model's candidate, from the monitor's history",
        description="Build the weekly post-deployment review (docs/review.md) from the history "
        "in a state directory (run/replay --state) or from Prometheus. Exit status 2: bad "
        "arguments, no history, an unknown model, or nothing recorded in the period.",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--state",
        metavar="PATH",
        help="the history: a replay's --state DIR, a run's state.path, or history.sqlite3",
    )
    source.add_argument(
        "--prometheus",
        metavar="URL",
        help="read the history from this Prometheus server instead (fewer sections: see "
        "docs/review.md)",
    )
    p.add_argument(
        "--since",
        default="7d",
        help="how far back from --until: 30m, 12h, 7d, 2w (default 7d)",
    )
    p.add_argument(
        "--until",
        help="end of the period: RFC 3339, or 'now' (default: the latest time in the history)",
    )
    p.add_argument(
        "--policy",
        metavar="FILE",
        help="with --prometheus: the policy, for the tolerances, owner and controls Prometheus "
        "does not hold",
    )
    p.add_argument("--model", help="only this model")
    p.add_argument("--version", help="only this candidate version")
    p.add_argument(
        "--format",
        choices=["html", "md"],
        help="html or md (default: from --out's suffix, .md is Markdown, else HTML)",
    )
    p.add_argument("--out", metavar="FILE", help="write here; - writes Markdown to stdout")
    rsub = p.add_subparsers(dest="review_command")
    s = rsub.add_parser(
        "sign",
        help="record the model owner's decision on a candidate in the history",
        description="Record a sign-off (wall-clock time) in the history of --state; the next "
        "review shows it. --version may be left out when the model has one candidate.",
    )
    s.add_argument(
        "--state",
        metavar="PATH",
        required=True,
        help="the history: a replay's --state DIR, a run's state.path, or history.sqlite3",
    )
    s.add_argument("--model", required=True)
    s.add_argument("--version", help="the candidate version (default: the model's only one)")
    s.add_argument("--decision", required=True, choices=DECISIONS)
    s.add_argument("--by", required=True, metavar="NAME", help="who decides")
    s.add_argument("--note", required=True, metavar="TEXT", help="why")


def _open_store(state: str, *, write: bool = False) -> HistoryStore:
    """The history of a state location (a replay's ``--state DIR``, a run's
    ``state.path``, or the history file itself); ``write`` for a sign-off."""
    path = Path(state)
    if not path.exists():
        raise ReviewError(
            f"--state {state}: no such directory or file (fix: the DIR given to "
            "`replay --state`, or the state.path of `run`)"
        )
    store = HistoryStore.open_existing(path)  # checks it is a history of this format
    if not write:
        return store
    store.close()
    return HistoryStore(history_file(path))


def _prometheus(
    url: str, since: str, until: str | None, policy: str | None
) -> tuple[HistorySource, float, float]:
    """The history read from Prometheus over the period (wall clock: ``--until`` is now)."""
    from monitor.review.prometheus import PrometheusHistory

    model_policy = load_policy(policy) if policy is not None else None
    end = float(math.floor(parse_until(until, latest=time.time(), now=time.time())))
    start = end - parse_duration(since)
    step = max(15.0, (end - start) / PROMETHEUS_POINTS)
    source = PrometheusHistory(url, since=start, until=end, step=step, policy=model_policy)
    return source, start, end


def _write(text: str, out: str) -> None:
    if out == "-":
        sys.stdout.write(text)
        return
    Path(out).write_text(text, encoding="utf-8")


def _review(args: argparse.Namespace) -> int:
    if args.state is None and args.prometheus is None:
        raise ReviewError("give the history: --state DIR (or --prometheus URL)")
    if args.out is None:
        raise ReviewError("give --out FILE (.html or .md), or --out - for Markdown on stdout")
    fmt = args.format or ("md" if args.out == "-" or args.out.endswith(".md") else "html")
    if args.out == "-" and fmt != "md":
        raise ReviewError("--out - writes Markdown: drop --format html, or give a file")
    if args.policy is not None and args.prometheus is None:
        raise ReviewError("--policy goes with --prometheus: a --state history holds its policy")
    duration = parse_duration(args.since)
    store = None
    if args.prometheus is not None:
        source, since, until = _prometheus(args.prometheus, args.since, args.until, args.policy)
        name = f"Prometheus at {args.prometheus}"
        clock = "wall clock of Prometheus's scrapes"
    else:
        store = source = _open_store(args.state)
        covered = source.span()
        if covered is None:
            raise ReviewError(f"--state {args.state}: the history is empty")
        until = parse_until(args.until, latest=covered[1], now=time.time())
        since = until - duration
        name = f"state directory {args.state}"
        clock = "event time"
    try:
        review = build_review(
            source,
            since,
            until,
            model=args.model,
            version=args.version,
            latency_edges=tuple(LATENCY_EDGES_MS),
            source_name=name,
            clock=clock,
        )
    finally:
        if store is not None:
            store.close()
    if fmt == "md":
        from monitor.review.markdown import render_markdown

        text = render_markdown(review)
    else:
        from monitor.review.html import render_html

        text = render_html(review)
    _write(text, args.out)
    alerts = sum(len(v.alerts) for m in review.models for v in m.versions)
    log.info("review written", out=args.out, format=fmt, models=len(review.models), alerts=alerts)
    if args.out != "-":
        print(f"wrote {args.out} ({fmt}): {len(review.models)} model(s), {alerts} alert(s)")
    return 0


def _sign(args: argparse.Namespace) -> int:
    from monitor.suggest import did_you_mean

    if not args.by.strip() or not args.note.strip():
        raise ReviewError("--by and --note must not be empty: say who decides and why")
    store = _open_store(args.state, write=True)
    try:
        names = [m.model for m in store.models()]
        if args.model not in names:
            raise ReviewError(
                f"model {args.model!r} is not in the history{did_you_mean(args.model, names)}; "
                f"models: {', '.join(names) or 'none'}"
            )
        record = next(m for m in store.models() if m.model == args.model)
        baseline = record.policy.get("baseline")
        candidates = [
            v.version
            for v in store.versions(args.model)
            if not v.baseline and v.version != baseline
        ]
        version = args.version
        if version is None:
            if len(candidates) != 1:
                raise ReviewError(
                    f"model {args.model} has {len(candidates)} candidate versions "
                    f"({', '.join(candidates) or 'none seen'}): give --version"
                )
            version = candidates[0]
        elif version not in candidates:
            raise ReviewError(
                f"model {args.model} has no candidate version {version!r}"
                f"{did_you_mean(version, candidates)}; candidates: {', '.join(candidates)}"
            )
        signoff = SignOff(args.model, version, time.time(), args.decision, args.by, args.note)
        store.add_signoff(signoff)
    finally:
        store.close()
    log.info("sign-off recorded", model=args.model, version=version, decision=args.decision)
    print(f"recorded: {args.decision} on {args.model} {version} by {args.by}")
    return 0


def review_command(args: argparse.Namespace) -> int:
    """Run ``shiftwatch review`` or ``shiftwatch review sign``; errors are one line, exit 2."""
    from monitor.logging import configure_logging

    configure_logging("warning")  # to stderr: with --out -, stdout is the report alone
    try:
        return _sign(args) if args.review_command == "sign" else _review(args)
    except (ValueError, PrometheusError) as err:  # ReviewError, HistoryError, --since/--until
        print(f"shiftwatch review: {err}", file=sys.stderr)
        return EXIT_USAGE
