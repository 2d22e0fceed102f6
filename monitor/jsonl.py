"""A line-oriented JSON writer shared by the file sinks (alerts, dead letters)."""

from __future__ import annotations

from pathlib import Path
from typing import IO

__all__ = ["JsonlWriter", "truncate"]


def truncate(path: str | Path, size: int) -> None:
    """Cut a file back to ``size`` bytes (what a checkpoint recorded), creating it if absent."""
    with open(path, "ab") as fh:
        fh.truncate(size)


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

    def position(self) -> int:
        """Bytes written so far (flushed first): a size to cut the file back to on resume."""
        self._fh.flush()
        return self._fh.tell()

    def close(self) -> None:
        self.flush()
        if self._owned:
            self._fh.close()
