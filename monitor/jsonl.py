"""A line-oriented JSON writer shared by the file sinks (alerts, dead letters)."""

from __future__ import annotations

from pathlib import Path
from typing import IO

__all__ = ["JsonlWriter"]


class JsonlWriter:
    """Writes one JSON document per line to a path it owns, or to a stream it borrows."""

    def __init__(self, target: str | Path | IO[str], *, append: bool) -> None:
        if isinstance(target, str | Path):
            self._fh: IO[str] = open(target, "a" if append else "w", encoding="utf-8")  # noqa: SIM115
            self._owned = True
        else:
            self._fh = target
            self._owned = False

    def write_line(self, text: str) -> None:
        self._fh.write(text + "\n")

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self.flush()
        if self._owned:
            self._fh.close()
