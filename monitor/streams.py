"""Streams of one (model, version): the overall stream and one per segment value."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["Stream", "decode_stream", "encode_stream", "segment_label"]

#: ``()`` is the overall stream, else ``(key, value)`` of one segment.
Stream = tuple[()] | tuple[str, str]


def segment_label(stream: Stream) -> str:
    """The metric label of a stream: ``""`` overall, else ``key=value``.

    >>> segment_label(()), segment_label(("lang", "en"))
    ('', 'lang=en')
    """
    return f"{stream[0]}={stream[1]}" if stream else ""


def encode_stream(stream: Stream) -> list[str]:
    """A stream as a list of plain strings (for checkpoints)."""
    return list(stream)


def decode_stream(values: Sequence[object]) -> Stream:
    """The inverse of :func:`encode_stream`."""
    if not values:
        return ()
    key, value = values
    return (str(key), str(value))
