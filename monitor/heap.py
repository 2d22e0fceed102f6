"""Heap housekeeping: the garbage collector's pace, and free pages back to the system.

A batch allocates tens of thousands of short-lived containers (decoded
events' fields, column lists, pairs), almost all freed by reference counting.
CPython's cyclic collector nevertheless runs a young-generation pass every 700
net allocations of tracked objects, and promotes survivors towards full
passes that walk every live object: on the demo's traffic that was a fifth of
a replay's time. :func:`pace_collector` raises the thresholds
(:data:`GC_THRESHOLDS`): the collector still runs, a few times a second at
full speed, and cyclic garbage (rare here) lives a little longer.

The dedupe window and the join table hold up to a million entries in dicts
and sets, which Python resizes by allocating a new table and freeing the old
one. glibc keeps such freed blocks mapped when they sit below live data, so
the process's resident memory climbs in steps that the pipeline no longer
uses (measured in BENCHMARKS.md, "Memory over 10M events": about 75 MB of a
430 MB peak). ``malloc_trim(0)`` returns every free page to the system
(``madvise(MADV_DONTNEED)`` on each whole free page, not only at the heap's
top; glibc 2.8 and later). :class:`HeapTrimmer` calls it at most once per
interval of wall time; elsewhere than glibc it does nothing.

glibc also raises its mmap threshold each time it frees a block it had
mapped (the "dynamic mmap threshold", ``mallopt(3)``), so the second and later
generations of a big table come from the heap instead of their own mapping.
:func:`map_big_blocks` fixes the threshold at :data:`MMAP_THRESHOLD_BYTES`, as
``MALLOC_MMAP_THRESHOLD_`` would: a table of a megabyte or more is mapped on
its own and unmapped, all of it, when freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import time
from collections.abc import Callable

__all__ = [
    "GC_THRESHOLDS",
    "MMAP_THRESHOLD_BYTES",
    "TRIM_INTERVAL_SECONDS",
    "HeapTrimmer",
    "malloc_trim",
    "map_big_blocks",
    "pace_collector",
]

#: The collector's thresholds while a pipeline runs (CPython's defaults: 700, 10, 10).
GC_THRESHOLDS = (100_000, 50, 100)
#: Seconds between two trims of a running pipeline.
TRIM_INTERVAL_SECONDS = 10.0
#: Blocks this large or larger get a mapping of their own (glibc's default before it adapts).
MMAP_THRESHOLD_BYTES = 1 << 20
#: ``mallopt``'s parameter number of the mmap threshold (``M_MMAP_THRESHOLD`` in malloc.h).
_M_MMAP_THRESHOLD = -3


def _libc(symbol: str, *argtypes: type[ctypes._SimpleCData[int]]) -> Callable[..., int] | None:
    """A glibc function, or None where the C library has none of that name."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function = getattr(ctypes.CDLL(name), symbol)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
        return None
    function.argtypes = list(argtypes)
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


_TRIM = _libc("malloc_trim", ctypes.c_size_t)
_MALLOPT = _libc("mallopt", ctypes.c_int, ctypes.c_int)


def pace_collector() -> None:
    """Set the collector's thresholds to :data:`GC_THRESHOLDS` (never lower than they are)."""
    current = gc.get_threshold()
    gc.set_threshold(*(max(a, b) for a, b in zip(GC_THRESHOLDS, current, strict=True)))


def map_big_blocks() -> bool:
    """Fix glibc's mmap threshold (see the module docstring); False where there is no glibc."""
    return _MALLOPT is not None and _MALLOPT(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1


def malloc_trim() -> bool:
    """Return the heap's free pages to the system; False where there is no glibc."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


class HeapTrimmer:
    """Calls :func:`malloc_trim` at most once per ``interval`` seconds of ``clock``.

    Created with a pipeline, it also sets the process's heap policy once:
    :func:`map_big_blocks` and :func:`pace_collector`.

    >>> now = [0.0]
    >>> t = HeapTrimmer(10.0, clock=lambda: now[0])
    >>> t.tick(), t.tick()
    (False, False)
    >>> now[0] = 11.0
    >>> t.tick() == (_TRIM is not None)
    True
    """

    def __init__(
        self, interval: float = TRIM_INTERVAL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.clock = clock
        self._last = clock()
        map_big_blocks()
        pace_collector()

    def tick(self) -> bool:
        """Trim if the interval has passed since the last trim; whether it trimmed."""
        now = self.clock()
        if now - self._last < self.interval:
            return False
        self._last = now
        return malloc_trim()
