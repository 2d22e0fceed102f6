"""The decoder's fast path: msgspec for the lines it is sure of, the contract for the rest.

:func:`monitor.events.decode` is the contract: pydantic, strict, with a
precise reason for every rejection. It costs about 5 µs a line, most of it in
``json.loads`` and pydantic's per-field validation. :func:`decode_batch`
decodes the lines it can with msgspec into the Structs of
:mod:`monitor.fast_events` (which mirror the pydantic models' constraints and
read like the pydantic events) and sends every line its fast path declines,
or might read differently from ``json.loads`` + pydantic, through
:func:`~monitor.events.decode` unchanged, which gives the exact rejection (or
the event, if the fast path was merely unsure).

The fast path declines, before decoding, every line that is:

- empty or over ``max_bytes`` (the contract's own codes and wording);
- not plain ASCII, or holds a backslash: ``json.loads`` reads bytes with
  ``surrogatepass`` and ignores nothing, msgspec skips unknown members
  without checking their UTF-8, and escapes can spell a key twice
  (``"\\u006bind"``);
- a CloudEvents envelope (it has a ``"specversion"`` member), or one that
  names ``"kind"`` more than once (msgspec reads the first tag, ``json.loads``
  keeps the last member);
- nested more than :data:`MAX_BRACKETS` brackets in all (``json.loads`` and
  msgspec give up at different depths).

After decoding it declines a time that does not match :data:`FAST_TIME` (RFC
3339 as the contract takes it, minus the lower-case ``t``/``z`` that
``datetime.fromisoformat`` refuses and with offset minutes below 60, which
``fromisoformat`` alone would not check) and an event past ``not_after`` (the
contract then words the ``future_time`` rejection). Times are read with
``datetime.fromisoformat``, which, like pydantic, truncates fractions to the
microsecond (msgspec's own datetime rounds). Latencies are finite by the
Struct's own bound.

A batch at once
---------------
:func:`decode_batch` makes those decisions for a whole span of lines with a
handful of C calls instead of a dozen Python-level steps per line, and falls
back to the line-by-line path (:func:`decode_fast`) for a span where a
batch-level test fails, after halving it down to :data:`MIN_SPAN` lines so
that one hostile line costs its neighbours little. Each batch-level test
decides exactly what the per-line tests decide:

- Size, ASCII, backslash and ``"specversion"`` are tested on the lines joined
  by ``,``; none of the patterns holds a comma, so none spans two lines.
- The span is decoded as one JSON array ``[line,line,...]`` into
  ``list[FastEvent]``, and once more into ``list[msgspec.Raw]`` (each
  element's exact bytes). A line that is not one complete JSON value (``1,2``,
  ``{} {``, an open string or bracket closed by the next line) could shift
  the elements, so the span is kept only if there are as many elements as
  lines and each element is exactly as long as its line. That proves
  alignment: the elements are disjoint, in order, and separated by at least a
  comma each; the array's interior is the lines' bytes plus one comma between
  each two, so no byte is left for whitespace or a shifted boundary and
  element *i* is line *i*, byte for byte. Each line is then one JSON value,
  decoded as it would be alone.
- ``"kind"``: each line decoded into a tagged Struct, so each spells
  ``"kind"`` at least once (no escapes); a total of one per line in the span
  is then exactly one in each.
- Brackets: each line holds at least one ``{`` (its object) and a second if
  it decoded a non-empty ``segments``. If the span's total is at most
  ``MAX_BRACKETS - 2`` above the sum of those floors, no line can exceed
  :data:`MAX_BRACKETS`; otherwise each line is counted.
- Times: the decoded time texts joined by newlines (which neither they nor
  :data:`FAST_TIME` can hold) match ``(?:FAST_TIME\\n)*FAST_TIME`` exactly when
  each matches :data:`FAST_TIME`; ``fromisoformat`` maps over all of them;
  and the latest instant is past ``not_after`` exactly when some one is
  (``datetime.timestamp`` is monotonic). Otherwise each time is checked alone.

Equivalence is proved by property tests
(``tests/monitor/test_fast_decode.py``): on random valid and hostile lines,
alone and in batches, both paths agree on accept or reject and on every
field's value.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Final

import msgspec
import numpy as np

from monitor.events import Rejection, decode
from monitor.fast_events import DecodedEvent, FastEvent, FastInference

__all__ = ["FAST_TIME", "MAX_BRACKETS", "MIN_SPAN", "decode_batch", "decode_fast"]

#: Lines with more ``{`` and ``[`` than this in all go to the pydantic path.
MAX_BRACKETS: Final = 64
#: A span of lines that fails a batch-level test is halved down to this many, then
#: decoded line by line.
MIN_SPAN: Final = 64

#: The times the fast path reads: RFC 3339 with ``T`` (or a space) and ``Z`` or a
#: ``+hh:mm`` offset whose minutes are below 60; a subset of what the contract takes.
#: ASCII digits only, as the lines the fast path reads are ASCII.
FAST_TIME: Final = re.compile(
    r"[0-9]{4}-[0-9][0-9]-[0-9][0-9][T ][0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
    r"(?:\.[0-9]{1,9})?(?:Z|[+-][0-9][0-9]:[0-5][0-9])"
)
_FAST_TIMES: Final = re.compile(f"(?:{FAST_TIME.pattern}\n)*{FAST_TIME.pattern}")

_LINE: Final = msgspec.json.Decoder(FastEvent)
_ARRAY: Final = msgspec.json.Decoder(list[FastEvent])
_ELEMENTS: Final = msgspec.json.Decoder(list[msgspec.Raw])
_fromisoformat = datetime.fromisoformat


def _read_time(event: FastEvent, not_after: float | None) -> bool:
    """Set the event's ``time`` from its text, if the fast path takes that text."""
    stamp = event.time_text
    if FAST_TIME.fullmatch(stamp) is None:
        return False
    try:
        when = _fromisoformat(stamp)
    except ValueError:
        return False
    if not_after is not None and when.timestamp() > not_after:
        return False
    event.time = when
    return True


def decode_fast(raw: bytes, *, not_after: float | None = None) -> FastEvent | None:
    """The event on ``raw``, if the fast path is sure of it; None sends it to the contract.

    A line accepted here is one :func:`monitor.events.decode` accepts, with the
    same field values (a :mod:`monitor.fast_events` Struct, not the pydantic
    event); None says nothing about the line (see the module docstring).

    Examples
    --------
    >>> decode_fast(b'{"kind": "outcome", "id": "o1", "time": "2026-01-01T00:00:00Z",'
    ...             b' "request_id": "r1", "label": "fraud"}').label
    'fraud'
    >>> decode_fast(b'{"kind": "outcome"}') is None
    True
    """
    if (
        not raw.isascii()
        or b"\\" in raw
        or b'"specversion"' in raw
        or raw.count(b'"kind"') != 1
        or raw.count(b"{") + raw.count(b"[") > MAX_BRACKETS
    ):
        return None
    try:
        event = _LINE.decode(raw)
    except msgspec.DecodeError:
        return None
    return event if _read_time(event, not_after) else None


def _decode_line(
    raw: bytes, max_bytes: int | None, not_after: float | None
) -> DecodedEvent | Rejection:
    event = None
    if raw and (max_bytes is None or len(raw) <= max_bytes):
        event = decode_fast(raw, not_after=not_after)
    return event if event is not None else decode(raw, max_bytes=max_bytes, not_after=not_after)


def _brackets(body: bytes) -> int:
    """How many ``{`` and ``[`` ``body`` holds (numpy: ``bytes.count`` of one byte is 5x slower)."""
    braces = int(np.count_nonzero(np.frombuffer(body, np.uint8) == ord("{")))
    return braces + body.count(b"[") if b"[" in body else braces


def _decode_together(
    values: Sequence[bytes], max_bytes: int | None, not_after: float | None
) -> Sequence[DecodedEvent | Rejection] | None:
    """The span decoded at once (see the module docstring), or None if a batch test fails."""
    n = len(values)
    lengths = list(map(len, values))
    if min(lengths) == 0 or (max_bytes is not None and max(lengths) > max_bytes):
        return None
    body = b",".join(values)
    if (
        not body.isascii()
        or b"\\" in body
        or b'"specversion"' in body
        or body.count(b'"kind"') != n
    ):
        return None
    array = b"[" + body + b"]"
    try:
        events = _ARRAY.decode(array)
        elements = _ELEMENTS.decode(array)
    except msgspec.DecodeError:
        return None
    if len(events) != n or list(map(len, elements)) != lengths:
        return None

    floor = n + sum(1 for e in events if type(e) is FastInference and e.segments)
    nested_ok = _brackets(body) - floor <= MAX_BRACKETS - 2
    stamps = [e.time_text for e in events]
    text = "\n".join(stamps)
    if nested_ok and text.count("\n") == n - 1 and _FAST_TIMES.fullmatch(text) is not None:
        try:
            whens: list[datetime] | None = list(map(_fromisoformat, stamps))
        except ValueError:
            whens = None
        if whens is not None and (not_after is None or max(whens).timestamp() <= not_after):
            for event, when in zip(events, whens, strict=True):
                event.time = when
            return events
    out: list[DecodedEvent | Rejection] = []
    for raw, event in zip(values, events, strict=True):
        if (nested_ok or raw.count(b"{") + raw.count(b"[") <= MAX_BRACKETS) and _read_time(
            event, not_after
        ):
            out.append(event)
        else:
            out.append(decode(raw, max_bytes=max_bytes, not_after=not_after))
    return out


def _decode_span(
    values: Sequence[bytes],
    max_bytes: int | None,
    not_after: float | None,
    out: list[DecodedEvent | Rejection],
) -> None:
    n = len(values)
    if n >= MIN_SPAN:
        together = _decode_together(values, max_bytes, not_after)
        if together is not None:
            out.extend(together)
            return
        if n >= 2 * MIN_SPAN:
            half = n // 2
            _decode_span(values[:half], max_bytes, not_after, out)
            _decode_span(values[half:], max_bytes, not_after, out)
            return
    out.extend([_decode_line(raw, max_bytes, not_after) for raw in values])


def decode_batch(
    values: Sequence[bytes], *, max_bytes: int | None = None, not_after: float | None = None
) -> list[DecodedEvent | Rejection]:
    """Decode and validate a batch of messages, in order, as :func:`~monitor.events.decode` does.

    Each accepted line is a :data:`~monitor.fast_events.DecodedEvent`: a
    :mod:`monitor.fast_events` Struct from the fast path, or the contract's
    pydantic event for a line the fast path declined; read either through
    the attributes :data:`~monitor.fast_events.EventView` lists. Each
    rejected line is the contract's :class:`~monitor.events.Rejection`, code
    and reason.

    Examples
    --------
    >>> line = (b'{"kind": "outcome", "id": "o1", "time": "2026-01-01T00:00:00Z",'
    ...         b' "request_id": "r1", "label": "fraud"}')
    >>> batch = decode_batch([line] * 100 + [b"[]"])
    >>> batch[0].kind, batch[0].time.isoformat(), batch[-1].code
    ('outcome', '2026-01-01T00:00:00+00:00', 'not_object')
    """
    out: list[DecodedEvent | Rejection] = []
    _decode_span(values, max_bytes, not_after, out)
    return out
