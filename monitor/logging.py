"""structlog set-up: JSON lines when not on a terminal, key=value on a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import structlog

__all__ = ["configure_logging"]

LogFormat = Literal["auto", "json", "console"]


class _StderrLogger:
    """structlog's output: whatever ``sys.stderr`` is when a line is written.

    Looked up per line, not bound at configuration, so a replaced and closed stream (a
    test's capture, a redirected terminal) never receives a line after it is gone.
    """

    def __init__(self, *args: Any) -> None:
        del args

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stdlib handler writing to the current ``sys.stderr`` (see :class:`_StderrLogger`)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        del value


def _clear_line(logger: Any, name: str, line: Any) -> Any:
    """Start at column 0 of a cleared line (ANSI erase-line), over any progress bar.

    The last processor: ``line`` is the rendered string.
    """
    return "\r\x1b[K" + line if isinstance(line, str) else line


def configure_logging(level: str = "info", fmt: LogFormat = "auto") -> None:
    """Route structlog, and the stdlib loggers of third-party libraries, to stderr.

    Log lines carry counts, ids of streams and checks, never event payloads or secrets.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"log level {level!r} is not one of debug, info, warning, error")
    console = sys.stderr.isatty() if fmt == "auto" else fmt == "console"
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=True)
        if console
        else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # On a terminal a progress bar may hold the current line: clear it before a log line.
    tail: list[structlog.typing.Processor] = [_clear_line] if sys.stderr.isatty() else []
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_StderrLogger,
        cache_logger_on_first_use=False,
    )
    # Third-party libraries log through the stdlib: render their records as ours, on the
    # same stream, so a line is always one event in one format.
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
                *tail,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
    # kafka-python logs every failed connection attempt at ERROR, many per second while
    # a broker is down; shiftwatch reports those conditions itself, once per retry
    # ("Kafka unreachable; retrying", "poll failed; retrying"). Its own lines are shown
    # only with --log-level debug.
    logging.getLogger("kafka").setLevel(logging.DEBUG if numeric <= logging.DEBUG else 100)
