"""A JSONL file (or stdin) read in batches: the source of ``shiftwatch replay``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from monitor.messages import Message

__all__ = ["input_name", "iter_file_batches", "iter_file_positions"]


def input_name(path: str | Path) -> str:
    """The topic name of a file's messages: its path, or ``<stdin>`` for ``-``."""
    return "<stdin>" if str(path) == "-" else str(path)


def iter_file_batches(path: str | Path, batch_size: int = 5000) -> Iterator[list[Message]]:
    """Yield batches of lines as messages; ``offset`` is the 1-based line number.

    ``-`` reads standard input. The newline ending each line is not part of
    the message; a blank line inside the file is a message (and is rejected
    as empty), so every line is accounted for.
    """
    for batch, _ in iter_file_positions(path, batch_size):
        yield batch


def iter_file_positions(
    path: str | Path, batch_size: int = 5000, start: tuple[int, int] = (0, 0)
) -> Iterator[tuple[list[Message], tuple[int, int]]]:
    """Batches with the position after each: (byte offset, lines read), to resume from.

    ``start`` is such a position (a regular file only): reading continues at
    that byte, numbering lines from the one after.
    """
    name = input_name(path)
    if str(path) == "-" and start != (0, 0):
        raise ValueError("standard input cannot be resumed from a position")
    fh: BinaryIO = sys.stdin.buffer if str(path) == "-" else open(path, "rb")  # noqa: SIM115
    try:
        position, number = start
        if position:
            fh.seek(position)
        batch: list[Message] = []
        for line in fh:
            number += 1
            position += len(line)
            batch.append(Message(line.rstrip(b"\r\n"), name, 0, number))
            if len(batch) >= batch_size:
                yield batch, (position, number)
                batch = []
        if batch:
            yield batch, (position, number)
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()
