"""The decoder's fast path agrees with the contract's pydantic decoder on every line."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from monitor.demo.simulator import Scenario, TrafficSimulator
from monitor.events import Event, Rejection, decode
from monitor.fast_decode import decode_batch, decode_fast
from tests.monitor.test_events import JSON_VALUES, VALID

KINDS = ("inference", "action", "outcome")

#: Times near and far from RFC 3339: every part may be out of range or malformed.
_DIGITS = st.integers(min_value=0, max_value=99).map(lambda n: f"{n:02d}")
TIMES = st.builds(
    lambda year, month, day, sep, hh, mm, ss, frac, off: (
        f"{year:04d}-{month}-{day}{sep}{hh}:{mm}:{ss}{frac}{off}"
    ),
    st.sampled_from([0, 1, 1970, 2024, 2026, 9999]),
    _DIGITS,
    _DIGITS,
    st.sampled_from(["T", "t", " ", "x"]),
    _DIGITS,
    _DIGITS,
    _DIGITS,
    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{0,12}", fullmatch=True)),
    st.one_of(
        st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+0100", "+01"]),
        st.builds(lambda s, h, m: f"{s}{h}:{m}", st.sampled_from("+-"), _DIGITS, _DIGITS),
    ),
) | st.sampled_from(["2026-11-02T09:00:00Z", "2026-02-29T00:00:00Z", "2026-11-02", "1e9", ""])

#: Valid times: any instant, offset and fraction, written as RFC 3339.
VALID_TIMES = st.builds(
    lambda when, offset, t: when.replace(tzinfo=timezone(timedelta(minutes=offset))).isoformat(t),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
    st.sampled_from(["T", " "]),
)

#: JSON number tokens, valid and not, written straight into the line.
NUMBERS = st.one_of(
    st.from_regex(r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
    st.sampled_from(["01", "1.", ".5", "+1", "1e", "NaN", "Infinity", "-Infinity", "-0", "1E400"]),
)

TEXT = st.one_of(
    st.text(max_size=8),
    st.text(alphabet="ab-", min_size=250, max_size=260),
    st.sampled_from(["", "m", "v1", "deny", "allow", "tool_call", "é", "\ud800", "a\\b", "kind"]),
)
FIELD_VALUE = st.one_of(
    TEXT,
    TIMES,
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0.0, max_value=1.0),
    st.dictionaries(TEXT, TEXT | st.integers(), max_size=40),
    JSON_VALUES,
)
FIELDS = st.sampled_from(
    [
        "kind",
        "id",
        "time",
        "request_id",
        "model",
        "version",
        "score",
        "decision",
        "segments",
        "latency_ms",
        "action",
        "tool",
        "privileged",
        "status",
        "label",
        "source",
        "specversion",
        "extra",
    ]
)


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    """A valid event of a random kind with random fields changed, encoded in a random way."""
    obj: dict[str, Any] = dict(VALID[draw(st.sampled_from(KINDS))])
    obj["time"] = draw(st.one_of(st.just(obj["time"]), VALID_TIMES, TIMES))
    changes = draw(st.sampled_from([0, 0, 1, 1, 2, 4]))
    obj.update(draw(st.dictionaries(FIELDS, FIELD_VALUE, max_size=changes)))
    for field in draw(st.lists(FIELDS, max_size=changes // 2)):
        obj.pop(field, None)
    separators = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    text = json.dumps(obj, allow_nan=True, ensure_ascii=draw(st.booleans()), separators=separators)
    number_field = draw(st.sampled_from(["score", "latency_ms", None]))
    if number_field is not None:  # a raw number token json.dumps would never write
        text = text[:-1] + f'{separators[0]}"{number_field}"{separators[1]}{draw(NUMBERS)}}}'
    if draw(st.booleans()) and len(obj) > 0:  # a member written twice: json keeps the last
        key = draw(st.sampled_from(sorted(obj)))
        twice = json.dumps({key: draw(FIELD_VALUE)}, allow_nan=True)[1:-1]
        text = "{" + twice + separators[0] + text[1:]
    return text.encode("utf-8", "surrogatepass")


def assert_same(fast: Event | Rejection, slow: Event | Rejection) -> None:
    """The two results are the same event (every field, its type and offset) or rejection."""
    assert type(fast) is type(slow), (fast, slow)
    if isinstance(slow, Rejection):
        assert fast == slow
        return
    assert not isinstance(fast, Rejection)
    dumped_fast, dumped_slow = fast.model_dump(), slow.model_dump()
    assert dumped_fast == dumped_slow
    for name, value in dumped_slow.items():
        assert type(dumped_fast[name]) is type(value), name
    assert fast.time.isoformat() == slow.time.isoformat()
    assert fast.time.utcoffset() == slow.time.utcoffset()
    assert fast == slow


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines())
@example(
    b'{"kind":"action","kind":"inference","id":"i","time":"2026-01-01T00:00:00Z",'
    b'"request_id":"r","model":"m","version":"v","action":"a"}'
)
@example(
    b'{"\\u006bind":"action","kind":"inference","id":"i","time":"2026-01-01T00:00:00Z",'
    b'"request_id":"r","model":"m","version":"v","action":"a"}'
)
@example(
    b'{"kind":"outcome","id":"o","time":"2026-01-01T00:00:00.1234567Z",'
    b'"request_id":"r","label":"l","x":"\xff"}'
)
@example(
    b'{"kind":"outcome","id":"o","time":"2026-01-01T00:00:00+05:75","request_id":"r","label":"l"}'
)
def test_fast_path_and_contract_agree_on_every_line(raw: bytes) -> None:
    """Random valid and hostile lines: the batch decoder gives what ``decode`` gives."""
    assert_same(decode_batch([raw])[0], decode(raw))
    fast = decode_fast(raw)
    if fast is not None:  # what the fast path accepts, the contract accepts alike
        assert_same(fast, decode(raw))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fast_path_agrees_on_arbitrary_bytes(raw: bytes) -> None:
    """Arbitrary bytes: the same rejection (or event) from both decoders."""
    assert_same(decode_batch([raw])[0], decode(raw))


def test_caps_and_future_times_are_worded_by_the_contract() -> None:
    """Empty, oversize and future lines get the contract's own codes and reasons."""
    line = json.dumps(VALID["outcome"]).encode()
    batch = [b"", line, line + b" " * 50, b"[1]"]
    fast = decode_batch(batch, max_bytes=len(line) + 10, not_after=0.0)
    slow = [decode(raw, max_bytes=len(line) + 10, not_after=0.0) for raw in batch]
    assert fast == slow
    assert [r.code for r in fast if isinstance(r, Rejection)] == [
        "empty",
        "future_time",
        "too_large",
        "not_object",
    ]


def test_demo_traffic_takes_the_fast_path_unchanged() -> None:
    """Every line of the demo's traffic is read by the fast path, as the contract reads it."""
    simulator = TrafficSimulator(Scenario(seed=3))
    raws = [json.dumps(e, separators=(",", ":")).encode() for e in simulator.next_batch(2000)]
    fast = [decode_fast(raw) for raw in raws]
    assert all(event is not None for event in fast)
    for event, raw in zip(fast, raws, strict=True):
        assert event is not None
        assert_same(event, decode(raw))
