"""Giving the heap's free pages back to the system, now and then.

The dedupe window and the join table hold up to a million entries in dicts
and sets, which Python resizes by allocating a new table and freeing the old
one. glibc keeps such freed blocks mapped when they sit below live data, so
the process's resident memory climbs in steps that the pipeline no longer
uses (measured in BENCHMARKS.md, "Memory over 10M events": about 75 MB of a
430 MB peak). ``malloc_trim(0)`` returns every free page to the system
(``madvise(MADV_DONTNEED)`` on each whole free page, not only at the heap's
top; glibc 2.8 and later). :class:`HeapTrimmer` calls it at most once per
interval of wall time; elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable

__all__ = ["TRIM_INTERVAL_SECONDS", "HeapTrimmer", "malloc_trim"]

#: Seconds between two trims of a running pipeline.
TRIM_INTERVAL_SECONDS = 10.0


def _libc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _libc_trim()


def malloc_trim() -> bool:
    """Return the heap's free pages to the system; False where there is no glibc."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


class HeapTrimmer:
    """Calls :func:`malloc_trim` at most once per ``interval`` seconds of ``clock``.

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

    def tick(self) -> bool:
        """Trim if the interval has passed since the last trim; whether it trimmed."""
        now = self.clock()
        if now - self._last < self.interval:
            return False
        self._last = now
        return malloc_trim()
