"""The checkpoint envelope: a signed, versioned, explicit encoding of a checkpoint.

The embedded engine's state store (:class:`monitor.state.SqliteStateStore`) and
the two-stage tier's stages (:mod:`monitor.scale.stored`) write checkpoints
through :func:`seal` and read them through :func:`open_sealed`, the only place that
signs and verifies. Only plain data is decoded: the payload is msgpack, and a
checkpoint is decoded only after its signature has verified.

Layout (all integers little-endian)::

    offset  size  field
    0       8     magic  b"SWCKPT\\r\\n"
    8       1     flags  bit 0: the payload is zlib-compressed; other bits 0
    9       8     length of the payload in bytes (u64)
    17      32    HMAC-SHA256 under the store's key of bytes 0-16 followed by the payload
    49      ...   payload

The payload (once decompressed, if flag bit 0 is set) is two msgpack objects
back to back. The first is the header, a map::

    format        int   the layout of the state; this release writes and reads FORMAT (2)
    code_version  str   the shiftwatch version that wrote it ("unknown" if not installed)
    policy        str   digest of the policy it was written under (monitor.state.policy_digest)
    positions     map   input positions: Kafka offsets per "topic:partition", a replay's
                        place in its file, output file sizes
    saved_at      float Unix time of the save

The second is the state: a tree of maps (str keys), arrays, str, int, float,
bool, nil, bytes and numpy arrays. Tuples are written as arrays and come back
as lists. A numpy array is msgpack extension type 1 whose data is::

    u8 n, n bytes of dtype.str (ASCII, e.g. "<f8", "|b1", "<u8"),
    u8 ndim, ndim x u64 shape, then the elements in C order, little-endian

Only boolean, integer, unsigned, float and complex dtypes are accepted (never
object arrays); an array comes back as a new, writable array of that dtype.

The header is decoded first, so a checkpoint of another format is refused with
its format and writer's version, whatever its state looks like. The format was
1 for the Python-object checkpoints of shiftwatch 0.1.0 and earlier (in SQLite, a
row of the old ``checkpoint`` table; a sealed blob starting with ``SWCK1``):
those are recognised and refused without reading their state.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

import msgpack
import numpy as np

__all__ = [
    "FORMAT",
    "LEGACY_MAGIC",
    "MAGIC",
    "Checkpoint",
    "CheckpointError",
    "ErrorKind",
    "code_version",
    "legacy_format_error",
    "open_sealed",
    "seal",
]

#: The layout of the checkpoint's state; bumped whenever it changes incompatibly.
#: 1 was the Python-object checkpoint of shiftwatch 0.1.0 and earlier.
FORMAT = 2

MAGIC = b"SWCKPT\r\n"
#: What format 1 checkpoints began with.
LEGACY_MAGIC = b"SWCK1"
_PREFIX = struct.Struct("<8sBQ")  # magic, flags, payload length
_MAC = 32
_HEAD = _PREFIX.size + _MAC
_ZLIB = 0x01
_NDARRAY = 1
_DTYPE_KINDS = frozenset("biufc")
_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, zlib.error, msgpack.UnpackException)

#: Why a checkpoint was refused: ``foreign`` (not a shiftwatch checkpoint),
#: ``truncated``, ``signature`` (altered, or another key), ``payload`` (signed but
#: undecodable), ``format`` (another format), ``unreadable`` (the store itself
#: cannot be read, e.g. a damaged SQLite file), ``state`` (decoded, but this
#: release's pipeline cannot restore it).
ErrorKind = Literal["foreign", "truncated", "signature", "payload", "format", "unreadable", "state"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be restored; ``kind`` says why, the message says how."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind


def code_version() -> str:
    """The installed shiftwatch's version, or ``"unknown"``."""
    try:
        return version("shiftwatch")
    except PackageNotFoundError:
        return "unknown"


_CODE_VERSION = code_version()


@dataclass
class Checkpoint:
    """One consistent cut: pipeline state, input positions, output file sizes."""

    policy: str
    #: Plain data and numpy arrays (see the module's docstring).
    state: dict[str, Any]
    #: Input positions, e.g. {"kafka": {"topic:0": 1234}} or {"file": [bytes, line]},
    #: and {"outputs": {path: size}}.
    positions: dict[str, Any] = field(default_factory=dict)
    saved_at: float = 0.0
    format: int = FORMAT
    code_version: str = _CODE_VERSION


def legacy_format_error(found: int = 1) -> CheckpointError:
    """The refusal of a checkpoint written in an earlier format that recorded no version."""
    return CheckpointError(
        "format",
        f"checkpoint format {found} written by shiftwatch 0.1.0 or earlier; "
        f"this release reads format {FORMAT}",
    )


# -- encoding ---------------------------------------------------------------------------------
def _default(obj: object) -> object:
    if isinstance(obj, np.ndarray):
        return _pack_array(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"a checkpoint cannot hold {type(obj).__name__} (plain data and numpy only)")


def _pack_array(arr: np.ndarray[Any, Any]) -> msgpack.ExtType:
    dtype = arr.dtype
    if dtype.kind not in _DTYPE_KINDS:
        raise TypeError(f"a checkpoint cannot hold numpy arrays of dtype {dtype} (object or other)")
    if dtype.byteorder == ">":
        dtype = dtype.newbyteorder("<")
        arr = arr.astype(dtype)
    name = dtype.str.encode("ascii")
    head = struct.pack(f"<B{len(name)}sB{arr.ndim}Q", len(name), name, arr.ndim, *arr.shape)
    return msgpack.ExtType(_NDARRAY, head + np.ascontiguousarray(arr).tobytes())


def _ext_hook(code: int, data: bytes) -> object:
    if code != _NDARRAY:
        raise ValueError(f"unknown msgpack extension type {code}")
    n = data[0]
    dtype = np.dtype(data[1 : 1 + n].decode("ascii"))
    if dtype.kind not in _DTYPE_KINDS or dtype.byteorder == ">":
        raise ValueError(f"array of dtype {dtype} not accepted")
    ndim = data[1 + n]
    start = 2 + n + 8 * ndim
    shape = struct.unpack_from(f"<{ndim}Q", data, 2 + n)
    count = 1
    for dim in shape:
        count *= dim
    if len(data) - start != count * dtype.itemsize:
        raise ValueError(f"array of shape {shape} and dtype {dtype}: {len(data) - start} bytes")
    return np.frombuffer(data, dtype=dtype, count=count, offset=start).reshape(shape).copy()


def seal(checkpoint: Checkpoint, key: bytes, *, compress: bool = False) -> bytes:
    """The signed bytes of ``checkpoint`` (see the module's docstring for the layout).

    ``compress``: zlib (level 1) the payload before signing, so that a reader
    verifies before it decompresses anything.
    """
    if not key:
        raise ValueError("a checkpoint needs a signing key")
    header = {
        "format": checkpoint.format,
        "code_version": checkpoint.code_version,
        "policy": checkpoint.policy,
        "positions": checkpoint.positions,
        "saved_at": checkpoint.saved_at,
    }
    payload = msgpack.packb(header, default=_default) + msgpack.packb(
        checkpoint.state, default=_default
    )
    flags = 0
    if compress:
        payload = zlib.compress(payload, 1)
        flags |= _ZLIB
    prefix = _PREFIX.pack(MAGIC, flags, len(payload))
    mac = hmac.new(key, prefix, hashlib.sha256)
    mac.update(payload)
    return b"".join((prefix, mac.digest(), payload))


def open_sealed(blob: bytes, key: bytes) -> Checkpoint:
    """The checkpoint sealed in ``blob``; verified before anything is decoded.

    Raises
    ------
    CheckpointError
        ``foreign``, ``truncated``, ``signature``, ``payload`` or ``format``.
    """
    if not key:
        raise ValueError("a checkpoint needs a signing key")
    if not blob.startswith(MAGIC):
        if blob.startswith(LEGACY_MAGIC):
            raise legacy_format_error()
        if blob and MAGIC.startswith(blob):
            raise CheckpointError("truncated", f"checkpoint truncated to {len(blob)} bytes")
        raise CheckpointError("foreign", "not a shiftwatch checkpoint")
    if len(blob) < _HEAD:
        raise CheckpointError("truncated", f"checkpoint truncated to {len(blob)} bytes")
    _, flags, length = _PREFIX.unpack_from(blob)
    view = memoryview(blob)
    payload = view[_HEAD:]
    mac = hmac.new(key, view[: _PREFIX.size], hashlib.sha256)
    mac.update(payload)
    if not hmac.compare_digest(mac.digest(), bytes(view[_PREFIX.size : _HEAD])):
        if len(payload) < length:
            raise CheckpointError(
                "truncated", f"checkpoint truncated: {len(payload)} of {length} payload bytes"
            )
        raise CheckpointError(
            "signature",
            "signature does not verify: the checkpoint was altered, or written with another key",
        )
    # Signed by a holder of the key from here on; decoding errors are a writer's bug.
    try:
        if flags & ~_ZLIB or len(payload) != length:
            raise ValueError(f"flags {flags:#x}, length {length} for {len(payload)} bytes")
        data = zlib.decompress(payload) if flags & _ZLIB else payload
        unpacker = msgpack.Unpacker(
            ext_hook=_ext_hook, strict_map_key=False, max_buffer_size=max(len(data), 1)
        )
        unpacker.feed(data)
        header = unpacker.unpack()
        fmt = header["format"]
        written_by = header.get("code_version", "unknown")
        if not isinstance(fmt, int) or not isinstance(written_by, str):
            raise ValueError("header without an int format and a str code_version")
    except _DECODE_ERRORS as exc:
        raise CheckpointError("payload", f"checkpoint payload does not decode: {exc}") from exc
    if fmt != FORMAT:
        raise CheckpointError(
            "format",
            f"checkpoint format {fmt} written by shiftwatch {written_by}; "
            f"this release reads format {FORMAT}",
        )
    try:
        state = unpacker.unpack()
        if unpacker.tell() != len(data):
            raise ValueError(f"{len(data) - unpacker.tell()} bytes after the state")
        if not isinstance(state, dict):
            raise ValueError(f"state is a {type(state).__name__}, not a map")
        return Checkpoint(
            policy=str(header["policy"]),
            state=state,
            positions=dict(header["positions"]),
            saved_at=float(header["saved_at"]),
            format=fmt,
            code_version=written_by,
        )
    except _DECODE_ERRORS as exc:
        raise CheckpointError("payload", f"checkpoint payload does not decode: {exc}") from exc
