"""A JSONL file (or stdin) read in batches: the source of ``shiftwatch replay``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from monitor.messages import Message

__all__ = ["iter_file_batches"]


def iter_file_batches(path: str | Path, batch_size: int = 5000) -> Iterator[list[Message]]:
    """Yield batches of lines as messages; ``offset`` is the 1-based line number.

    ``-`` reads standard input. The newline ending each line is not part of
    the message; a blank line inside the file is a message (and is rejected
    as empty), so every line is accounted for.
    """
    name = "<stdin>" if str(path) == "-" else str(path)
    fh: BinaryIO = sys.stdin.buffer if str(path) == "-" else open(path, "rb")  # noqa: SIM115
    try:
        batch: list[Message] = []
        for number, line in enumerate(fh, start=1):
            batch.append(Message(line.rstrip(b"\r\n"), name, 0, number))
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()
