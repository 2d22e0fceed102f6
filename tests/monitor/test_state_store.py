"""The checkpoint envelope and the SQLite state store: signed, versioned, refused precisely."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import sqlite3
import stat
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

from monitor.demo.simulator import Scenario, write_jsonl
from monitor.envelope import (
    FORMAT,
    MAGIC,
    Checkpoint,
    CheckpointError,
    code_version,
    open_sealed,
    seal,
)
from monitor.state import SqliteStateStore, key_file
from tests.conftest import DEMO_POLICY

KEY = b"k" * 32
HEAD = 8 + 1 + 8  # magic, flags, payload length
MAC_END = HEAD + 32


def rich_state() -> dict[str, Any]:
    """Nested plain data and numpy arrays of several dtypes, shapes and byte orders."""
    rng = np.random.default_rng(1)
    return {
        "dedupe": {"capacity": 3, "ids": np.array([1, 2**64 - 1, 2**63], dtype=np.uint64)},
        "floats": rng.normal(size=(3, 4)),
        "float32_scalar": np.array(1.25, dtype=np.float32),
        "bools": np.array([[True, False], [False, True]]),
        "int8_3d": np.arange(24, dtype=np.int8).reshape(2, 3, 4),
        "complex": np.array([1 + 2j, -3.5j]),
        "empty": np.zeros((0, 5), dtype=np.int64),
        "big_endian": np.array([1.5, -2.0], dtype=">f8"),
        "strided": np.arange(10, dtype=np.int32)[::3],
        "nested": {"list": [1, "two", 3.0, None, True, [b"bytes", {"k": "v"}]], "empty": {}},
        "specials": [float("inf"), float("-inf"), -0.0, 2**63 - 1, -(2**63)],
        "unicode": "naïve \u2013 \U0001f642",
    }


def checkpoint(state: dict[str, Any] | None = None, fmt: int = FORMAT) -> Checkpoint:
    return Checkpoint(
        policy="digest",
        state=rich_state() if state is None else state,
        positions={"kafka": {"events:0": 12}, "outputs": {"alerts": 40}},
        saved_at=1234.5,
        format=fmt,
    )


def assert_same_tree(got: Any, want: Any) -> None:
    """Equal plain data; arrays with equal values, shape and (little-endian) dtype."""
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray)
        assert got.dtype == want.dtype.newbyteorder("<") and got.shape == want.shape
        assert np.array_equal(got, want) and got.flags.writeable
    elif isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want)
        for k in want:
            assert_same_tree(got[k], want[k])
    elif isinstance(want, list | tuple):
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert_same_tree(g, w)
    else:
        assert type(got) is type(want) and got == want


def reseal(blob: bytes, payload: bytes, key: bytes = KEY) -> bytes:
    """``blob``'s header over another payload, correctly signed (a writer's bug, not an attack)."""
    prefix = blob[:8] + bytes([0]) + struct.pack("<Q", len(payload))
    return prefix + hmac.new(key, prefix + payload, hashlib.sha256).digest() + payload


def flip(blob: bytes, at: int) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 0x01]) + blob[at + 1 :]


# --- the envelope ---------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_envelope_round_trips_nested_data_and_arrays(compress: bool) -> None:
    """Every field and the whole state come back, arrays with their dtype and shape."""
    opened = open_sealed(seal(checkpoint(), KEY, compress=compress), KEY)
    assert opened.policy == "digest" and opened.saved_at == 1234.5
    assert opened.positions == {"kafka": {"events:0": 12}, "outputs": {"alerts": 40}}
    assert opened.format == FORMAT == 2 and opened.code_version == code_version()
    assert_same_tree(opened.state, rich_state())


def test_envelope_layout_is_magic_flags_length_mac_payload() -> None:
    """The documented layout: magic, flags, length, HMAC-SHA256 over the rest, msgpack."""
    blob = seal(checkpoint({"a": 1}), KEY)
    assert blob.startswith(MAGIC) and blob[8] == 0
    (length,) = struct.unpack_from("<Q", blob, 9)
    payload = blob[MAC_END:]
    assert len(payload) == length
    assert blob[HEAD:MAC_END] == hmac.new(KEY, blob[:HEAD] + payload, hashlib.sha256).digest()
    unpacker = msgpack.Unpacker()
    unpacker.feed(payload)
    assert unpacker.unpack()["format"] == 2 and unpacker.unpack() == {"a": 1}


def test_envelope_refuses_object_arrays_and_arbitrary_objects() -> None:
    """Only plain data and numeric arrays can be sealed: nothing that would need code to load."""
    with pytest.raises(TypeError, match="dtype object"):
        seal(checkpoint({"x": np.array([object()])}), KEY)
    with pytest.raises(TypeError, match="cannot hold set"):
        seal(checkpoint({"x": {1, 2}}), KEY)


def _kinds_of_damage(blob: bytes) -> list[tuple[str, bytes, str]]:
    """(what, damaged blob, the kind it must be refused with)."""
    (length,) = struct.unpack_from("<Q", blob, 9)
    longer = blob[:9] + struct.pack("<Q", length + 1) + blob[HEAD:]
    shorter = blob[:9] + struct.pack("<Q", length - 1) + blob[HEAD:]
    return [
        ("flipped magic byte", flip(blob, 3), "foreign"),
        ("flipped flags byte", flip(blob, 8), "signature"),
        ("length one more", longer, "truncated"),
        ("length one less", shorter, "signature"),
        ("flipped signature byte", flip(blob, HEAD + 7), "signature"),
        ("flipped first payload byte", flip(blob, MAC_END), "signature"),
        ("flipped last payload byte", flip(blob, len(blob) - 1), "signature"),
        ("cut inside the magic", blob[:5], "truncated"),
        ("cut inside the signature", blob[:30], "truncated"),
        ("cut inside the payload", blob[: len(blob) - 10], "truncated"),
        ("empty", b"", "foreign"),
        ("random bytes", os.urandom(4000), "foreign"),
        ("a JSON document", json.dumps({"state": "x", "format": 2}).encode(), "foreign"),
    ]


@pytest.mark.parametrize("compress", [False, True])
def test_envelope_refuses_each_kind_of_damage_with_its_kind(compress: bool) -> None:
    """Damage anywhere (header, signature, payload), truncation and foreign data are refused."""
    blob = seal(checkpoint(), KEY, compress=compress)
    for what, damaged, kind in _kinds_of_damage(blob):
        with pytest.raises(CheckpointError) as err:
            open_sealed(damaged, KEY)
        assert err.value.kind == kind, what
    with pytest.raises(CheckpointError, match="not a shiftwatch checkpoint"):
        open_sealed(os.urandom(100), KEY)


def test_envelope_refuses_another_key() -> None:
    """A checkpoint written with another key is refused, naming both possible causes."""
    with pytest.raises(CheckpointError) as err:
        open_sealed(seal(checkpoint(), KEY), b"another key")
    assert err.value.kind == "signature"
    assert str(err.value) == (
        "signature does not verify: the checkpoint was altered, or written with another key"
    )


def test_envelope_refuses_other_formats_naming_format_and_writer() -> None:
    """Format 1 (the signed checkpoints of 0.1.0) and any other number are refused."""
    old = Checkpoint(policy="p", state={}, format=1, code_version="0.1.0")
    with pytest.raises(CheckpointError) as err:
        open_sealed(seal(old, KEY), KEY)
    assert err.value.kind == "format"
    assert str(err.value) == (
        "checkpoint format 1 written by shiftwatch 0.1.0; this release reads format 2"
    )
    future = replace(old, format=3, code_version="0.9.0", state={"x": msgpack.ExtType(9, b"?")})
    with pytest.raises(CheckpointError, match=r"format 3 written by shiftwatch 0\.9\.0"):
        open_sealed(seal(future, KEY), KEY)
    payload = pickle.dumps({"state": b"", "format": 1})
    legacy = b"SWCK1" + hmac.new(KEY, payload, hashlib.sha256).digest() + payload
    with pytest.raises(CheckpointError) as err:
        open_sealed(legacy, KEY)
    assert err.value.kind == "format" and "format 1 written by shiftwatch 0.1.0 or earlier" in str(
        err.value
    )


def test_envelope_refuses_a_signed_payload_that_does_not_decode() -> None:
    """Correctly signed garbage (a writer's bug) is refused as an undecodable payload."""
    blob = seal(checkpoint(), KEY)
    for payload in [b"\xc1", msgpack.packb({"no": "format"}), msgpack.packb([1, 2])]:
        with pytest.raises(CheckpointError) as err:
            open_sealed(reseal(blob, payload), KEY)
        assert err.value.kind == "payload"
    header = msgpack.packb(
        {"format": 2, "code_version": "x", "policy": "p", "positions": {}, "saved_at": 0.0}
    )
    bad_array = msgpack.packb({"a": msgpack.ExtType(1, b"\x03<f8\x01" + struct.pack("<Q", 4))})
    with pytest.raises(CheckpointError, match="does not decode") as err:
        open_sealed(reseal(blob, header + bad_array), KEY)
    assert err.value.kind == "payload"


# --- the SQLite store -------------------------------------------------------------------------


def _saved(tmp_path: Path, key: bytes | None = None) -> Path:
    path = tmp_path / "state.sqlite3"
    store = SqliteStateStore(path, key)
    store.save(checkpoint())
    store.close()
    return path


def _blob(path: Path) -> bytes:
    with sqlite3.connect(path) as conn:
        return bytes(conn.execute("SELECT blob FROM sealed_checkpoint").fetchone()[0])


def _set_blob(path: Path, blob: bytes) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE sealed_checkpoint SET blob = ?", (blob,))


def _load(path: Path, key: bytes | None = None) -> Checkpoint | None:
    store = SqliteStateStore(path, key)
    try:
        return store.load()
    finally:
        store.close()


def test_sqlite_store_round_trips_with_a_generated_key_file(tmp_path: Path) -> None:
    """Without a secret a 32-byte key is generated next to the file (0600) and reused."""
    path = _saved(tmp_path)
    key = key_file(path)
    assert key == tmp_path / "state.sqlite3.key"
    assert len(key.read_bytes()) == 32 and stat.S_IMODE(key.stat().st_mode) == 0o600
    loaded = _load(path)
    assert loaded is not None and loaded.policy == "digest"
    assert_same_tree(loaded.state, rich_state())
    assert open_sealed(_blob(path), key.read_bytes()).positions == loaded.positions
    assert _load(tmp_path / "new.sqlite3") is None


def test_sqlite_store_with_a_secret_writes_no_key_file(tmp_path: Path) -> None:
    """A configured secret signs the checkpoint; no key file is written."""
    path = _saved(tmp_path, key=b"configured secret")
    assert not key_file(path).exists()
    loaded = _load(path, key=b"configured secret")
    assert loaded is not None and loaded.positions["kafka"] == {"events:0": 12}
    with pytest.raises(CheckpointError) as err:
        _load(path, key=b"another secret")
    assert err.value.kind == "signature"


def test_sqlite_store_refuses_each_kind_of_edited_blob(tmp_path: Path) -> None:
    """The row's blob edited on disk: every damage is refused with its kind, never decoded."""
    path = _saved(tmp_path)
    good = _blob(path)
    for what, damaged, kind in _kinds_of_damage(good):
        _set_blob(path, damaged)
        with pytest.raises(CheckpointError) as err:
            _load(path)
        assert err.value.kind == kind, what
    _set_blob(path, good)
    assert _load(path) is not None


def test_sqlite_store_refuses_a_byte_flipped_in_the_file(tmp_path: Path) -> None:
    """A byte flipped in the database file itself, inside the checkpoint, fails the signature."""
    path = _saved(tmp_path)
    raw = path.read_bytes()
    at = raw.index(MAGIC) + MAC_END + 100
    path.write_bytes(flip(raw, at))
    with pytest.raises(CheckpointError) as err:
        _load(path)
    assert err.value.kind == "signature"


def test_sqlite_store_refuses_a_swapped_key_file(tmp_path: Path) -> None:
    """A checkpoint whose key file was replaced (another host's, an old backup) is refused."""
    path = _saved(tmp_path)
    key_file(path).write_bytes(os.urandom(32))
    with pytest.raises(CheckpointError) as err:
        _load(path)
    assert err.value.kind == "signature"


def test_sqlite_store_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    """Random bytes or a JSON document as the state file: refused as unreadable."""
    for content in [os.urandom(8192), json.dumps({"checkpoint": 1}).encode() * 200]:
        path = tmp_path / "state.sqlite3"
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match="not a readable SQLite database") as err:
            _load(path)
        assert err.value.kind == "unreadable"


def test_sqlite_store_refuses_a_format_1_row_without_unpickling(tmp_path: Path) -> None:
    """A checkpoint of shiftwatch 0.1.0 (a pickle in the old table) is refused, never loaded."""
    path = tmp_path / "state.sqlite3"
    marker = tmp_path / "unpickled"

    class Trap:
        def __reduce__(self) -> tuple[Any, ...]:
            return (Path.touch, (marker,))

    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), format INTEGER NOT "
            "NULL, saved_at REAL NOT NULL, policy TEXT NOT NULL, positions TEXT NOT NULL, "
            "state BLOB NOT NULL)"
        )
        conn.execute(
            "INSERT INTO checkpoint VALUES (1, 1, 0.0, 'p', '{}', ?)", (pickle.dumps(Trap()),)
        )
    with pytest.raises(CheckpointError) as err:
        _load(path)
    assert err.value.kind == "format" and "format 1" in str(err.value)
    assert not marker.exists()
    store = SqliteStateStore(path)
    store.save(checkpoint({"fresh": True}))  # the next save replaces the old table
    store.close()
    loaded = _load(path)
    assert loaded is not None and loaded.state == {"fresh": True}


def test_sqlite_store_discard_forgets_a_refused_checkpoint(tmp_path: Path) -> None:
    """discard() empties a damaged row, or moves an unreadable file aside; saving works again."""
    path = _saved(tmp_path)
    _set_blob(path, b"garbage")
    store = SqliteStateStore(path)
    store.discard()
    assert store.load() is None
    store.close()
    path.write_bytes(os.urandom(8192))
    store = SqliteStateStore(path)
    store.discard()
    store.save(checkpoint({"a": 1}))
    assert (loaded := store.load()) is not None and loaded.state == {"a": 1}
    store.close()
    assert (tmp_path / "state.sqlite3.discarded").exists()


# --- --state-mismatch through the command line ------------------------------------------------


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo stream (~128k lines, a few seconds to replay) that raises alerts."""
    path = tmp_path_factory.mktemp("mismatch") / "events.jsonl"
    write_jsonl(path, replace(Scenario(seed=23), requests_per_second=300.0), 60_000)
    return path


def _replay(events: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable, "-m", "monitor.cli", "replay", str(events),
        "--policy", str(DEMO_POLICY),
        "--alerts-out", str(out / "alerts.jsonl"),
        "--no-progress", "--state", str(out / "state"), *extra,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_replay_state_mismatch_fail_exits_2_and_fresh_replays(events: Path, tmp_path: Path) -> None:
    """A corrupted replay.sqlite3: `fail` (the default) exits 2 with one line naming the file,
    the reason and the fix, no traceback; `fresh` discards it and gives the same output."""
    first = _replay(events, tmp_path)
    assert first.returncode == 0, first.stderr
    alerts = (tmp_path / "alerts.jsonl").read_bytes()
    assert alerts.count(b"\n") >= 1
    state = tmp_path / "state" / "replay.sqlite3"
    _set_blob(state, flip(_blob(state), MAC_END + 5))

    failed = _replay(events, tmp_path)
    assert failed.returncode == 2
    assert "Traceback" not in failed.stderr
    lines = [line for line in failed.stderr.splitlines() if "cannot be restored" in line]
    assert lines == [
        f"shiftwatch replay: state file {state} cannot be restored: signature does not verify: "
        "the checkpoint was altered, or written with another key. Fix: run once with "
        "--state-mismatch=fresh to discard it and replay from the beginning of the file, or "
        "use another --state directory."
    ]
    assert (tmp_path / "alerts.jsonl").read_bytes() == alerts  # untouched

    fresh = _replay(events, tmp_path, "--state-mismatch", "fresh", "--log-level", "warning")
    assert fresh.returncode == 0, fresh.stderr
    assert "checkpoint discarded" in fresh.stderr and "Traceback" not in fresh.stderr
    assert (tmp_path / "alerts.jsonl").read_bytes() == alerts
    assert _load(state) is not None  # a valid checkpoint again


def test_run_state_mismatch_fail_exits_2_before_consuming(tmp_path: Path) -> None:
    """`shiftwatch run` with a format 1 state file exits 2 with one error line and the fix,
    before connecting to Kafka (the bootstrap address here is unreachable)."""
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE checkpoint (id INTEGER PRIMARY KEY, format INTEGER)")
        conn.execute("INSERT INTO checkpoint VALUES (1, 1)")
    cmd = [
        sys.executable, "-m", "monitor.cli", "run", "--policy", str(DEMO_POLICY),
        "--bootstrap-servers", "127.0.0.1:9", "--state", str(path), "--log-format", "json",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    errors = [json.loads(line) for line in done.stderr.splitlines() if '"error"' in line]
    assert [e["event"] for e in errors] == [
        f"state file {path} cannot be restored: checkpoint format 1 written by shiftwatch 0.1.0 "
        "or earlier; this release reads format 2. Fix: start once with --state-mismatch=fresh "
        "(or SHIFTWATCH_STATE__MISMATCH=fresh) to discard it and resume from the committed "
        "Kafka offsets, or move the file away."
    ]
