"""The decoder's fast path agrees with the contract's pydantic decoder on every line."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from monitor.demo.simulator import Scenario, TrafficSimulator
from monitor.events import Event, OutcomeEvent, Rejection, decode
from monitor.fast_decode import MAX_BRACKETS, MIN_SPAN, decode_batch, decode_fast
from monitor.fast_events import FastAction, FastInference, FastOutcome
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


def assert_same(fast: Any, slow: Event | Rejection) -> None:
    """The two results are the same event (kind, every field, its type and offset) or rejection.

    The fast path's events are msgspec Structs, not pydantic models: they are
    compared field by field with the contract's ``model_dump``, by attribute.
    """
    if isinstance(slow, Rejection):
        assert fast == slow
        return
    assert not isinstance(fast, Rejection), (fast, slow)
    assert fast.kind == slow.kind
    for name, value in slow.model_dump().items():
        got = getattr(fast, name)
        assert got == value, (name, got, value)
        assert type(got) is type(value), name
    assert fast.time.isoformat() == slow.time.isoformat()
    assert fast.time.utcoffset() == slow.time.utcoffset()


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


# -- batches: the span-at-once path ------------------------------------------------------------

FAST_TYPES = (FastInference, FastAction, FastOutcome)


def demo_lines(n: int, seed: int = 5) -> list[bytes]:
    """``n`` valid lines of the demo's traffic, compact JSON, every kind."""
    simulator = TrafficSimulator(Scenario(seed=seed))
    return [json.dumps(e, separators=(",", ":")).encode() for e in simulator.next_batch(n)][:n]


def line(**changes: Any) -> bytes:
    """A valid outcome line with ``changes``, compact JSON."""
    return json.dumps(VALID["outcome"] | changes, separators=(",", ":")).encode()


def assert_batch_is_contract(
    batch: list[bytes], *, max_bytes: int | None = None, not_after: float | None = None
) -> list[Any]:
    """``decode_batch`` gives, line for line and in order, what ``decode`` gives each line."""
    fast = decode_batch(batch, max_bytes=max_bytes, not_after=not_after)
    assert len(fast) == len(batch)
    for got, raw in zip(fast, batch, strict=True):
        assert_same(got, decode(raw, max_bytes=max_bytes, not_after=not_after))
    return fast


def test_an_empty_batch_is_an_empty_list() -> None:
    """No lines, no results."""
    assert decode_batch([]) == []


def test_a_clean_batch_is_read_at_once_into_structs() -> None:
    """Demo traffic in one batch: every line a Struct equal to the contract's event, in order."""
    batch = demo_lines(3 * MIN_SPAN + 7)
    fast = assert_batch_is_contract(batch, max_bytes=10_000, not_after=4e9)
    assert all(type(event) in FAST_TYPES for event in fast)
    assert [event.id for event in fast] == [json.loads(raw)["id"] for raw in batch]


#: One line each batch-level test must find among good ones, and the contract's code for it
#: (None: the contract accepts it, by its slow path).
HOSTILE: dict[str, tuple[bytes, str | None]] = {
    "empty": (b"", "empty"),
    "too large": (line(label="x" * 200, pad="y" * 400), "too_large"),
    "not ascii": (line(label="fraud", note="é"), None),
    "not utf-8": (line(label="fraud")[:-1] + b',"note":"\xff"}', "invalid_json"),
    "backslash": (line(label="fr\\aud"), None),
    "escaped kind": (line()[:-1] + b',"\\u006bind":"action"}', "missing_field"),
    "cloudevent": (
        json.dumps(
            {
                "specversion": "1.0",
                "type": "dev.shiftwatch.outcome",
                "source": "s",
                "id": "ce1",
                "time": "2026-01-01T00:00:00Z",
                "data": {"request_id": "r1", "label": "fraud"},
            }
        ).encode(),
        None,
    ),
    # An envelope that also carries an event's fields at the top: the contract reads ``data``.
    "cloudevent over an event": (
        line(
            specversion="1.0",
            type="dev.shiftwatch.outcome",
            source="s",
            data={"request_id": "r2", "label": "legit"},
        ),
        None,
    ),
    "kind twice": (b'{"kind":"action",' + line()[1:], None),
    # msgspec reads the first tag (a valid outcome), json.loads keeps the last.
    "kind twice, first valid": (line()[:-1] + b',"kind":"inference"}', "missing_field"),
    "no kind": (line()[:1] + line()[len(b'{"kind":"outcome",') :], "missing_field"),
    "deep": (line(x=json.loads("[" * (MAX_BRACKETS + 1) + "]" * (MAX_BRACKETS + 1))), None),
    "lower-case z": (line(time="2026-01-01T00:00:00z"), None),
    "offset minutes": (line(time="2026-01-01T00:00:00+05:75"), "invalid_field"),
    "future": (line(time="2999-01-01T00:00:00Z"), "future_time"),
    "huge latency": (
        json.dumps(VALID["inference"]).encode()[:-1] + b',"latency_ms":1e400}',
        "invalid_field",
    ),
    "missing field": (b'{"kind":"inference","id":"i"}', "missing_field"),
    "not an object": (b"[1]", "not_object"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("where", [0, 100, -1])
def test_one_hostile_line_among_good_ones(name: str, where: int) -> None:
    """A line one batch-level test must catch, first, amid or last: every line as the contract."""
    raw, code = HOSTILE[name]
    batch = demo_lines(2 * MIN_SPAN + 40)
    batch.insert(where if where >= 0 else len(batch), raw)
    fast = assert_batch_is_contract(batch, max_bytes=500, not_after=4e9)
    at = where if where >= 0 else len(batch) - 1
    result = fast[at]
    assert (result.code if isinstance(result, Rejection) else None) == code
    assert type(result) not in FAST_TYPES  # declined by the fast path, read by the contract
    good = [event for i, event in enumerate(fast) if i != at]
    assert all(type(event) in FAST_TYPES for event in good)


#: Lines that are not one JSON value alone, and could shift their neighbours in ``[a,b,c]``.
JOINS_BADLY: dict[str, list[bytes]] = {
    "two numbers": [b"1,2"],
    "two events, a space": [line(id="x1") + b" " + line(id="x2")],
    "two events, a comma": [line(id="x1") + b"," + line(id="x2")],
    "a closing bracket": [b"]"],
    "an opening bracket": [b"["],
    "close and reopen": [line(id="x1") + b"],[" + line(id="x2")],
    # An open string closed by the next line (it reads the comma between them), and a line
    # of two events after them: as many elements as lines, and as many "kind" as lines.
    "string across lines": [
        line(id="x1")[:-1] + b',"x":"',
        b'"}',
        line(id="x2") + b"," + line(id="x3"),
    ],
    # The same with an object left open instead of a string.
    "object across lines": [
        line(id="x1")[:-1] + b',"x":{"a":1',
        b'"b":2}}',
        line(id="x2") + b"," + line(id="x3"),
    ],
    "leading space": [b" " + line(id="x1")],
    "trailing newline": [line(id="x1") + b"\n"],
}


@pytest.mark.parametrize("name", sorted(JOINS_BADLY))
def test_lines_that_join_badly_are_read_alone(name: str) -> None:
    """A line that is not one JSON value alone never becomes an event nor shifts another."""
    batch = demo_lines(2 * MIN_SPAN + 10)
    batch[70:70] = JOINS_BADLY[name]
    fast = assert_batch_is_contract(batch)
    ids = [getattr(event, "id", None) for event in fast]
    assert ("x2" not in ids and "x3" not in ids) or name in {"leading space", "trailing newline"}


def test_many_lines_with_brackets_in_strings_each_counted() -> None:
    """More braces in a batch than the floors allow, none over the cap in any line: all fast."""
    batch = [line(id=f"o{i}", label="{[" * 20) for i in range(MIN_SPAN * 2)]
    fast = assert_batch_is_contract(batch)
    assert all(type(event) is FastOutcome for event in fast)
    plain = demo_lines(MIN_SPAN)
    at_cap = line(id="cap", label="{" * (MAX_BRACKETS - 1))
    over = line(id="over", label="{" * MAX_BRACKETS)
    fast = assert_batch_is_contract([*plain, at_cap, *batch, over, *plain])
    assert type(fast[MIN_SPAN]) is FastOutcome
    assert type(fast[-MIN_SPAN - 1]) is OutcomeEvent
    assert sum(type(event) in FAST_TYPES for event in fast) == len(fast) - 1


def test_times_checked_one_by_one_when_the_batch_check_fails() -> None:
    """A future time, a lower-case ``t``, an unreal date: only those lines leave the fast path."""
    batch = demo_lines(MIN_SPAN)
    batch[3] = line(id="late", time="2100-01-01T00:00:00Z")
    batch[9] = line(id="lower", time="2026-01-01t00:00:00Z")
    batch[20] = line(id="feb", time="2026-02-30T00:00:00Z")
    fast = assert_batch_is_contract(batch, not_after=4e9)
    slow = {3, 9, 20}
    assert [i for i, event in enumerate(fast) if type(event) not in FAST_TYPES] == sorted(slow)


@st.composite
def batches(draw: st.DrawFn) -> list[bytes]:
    """Demo traffic with a few random hostile lines (see ``lines``) at random places."""
    batch = demo_lines(draw(st.integers(min_value=MIN_SPAN, max_value=3 * MIN_SPAN)), seed=1)
    for raw in draw(
        st.lists(lines() | st.sampled_from(list(HOSTILE.values())).map(lambda h: h[0]), max_size=3)
    ):
        batch.insert(draw(st.integers(min_value=0, max_value=len(batch))), raw)
    return batch


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_batches_with_hostile_lines_agree_with_the_contract(batch: list[bytes]) -> None:
    """Random hostile lines amid good ones: every line as ``decode`` reads it, in order."""
    assert_batch_is_contract(batch, max_bytes=600, not_after=4e9)
