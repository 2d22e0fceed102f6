"""The pipeline's heap housekeeping reaches glibc where there is one, and is timed by its clock."""

from __future__ import annotations

import gc
import platform

import pytest

from monitor import heap
from tests.servers import missing

GLIBC = platform.libc_ver()[0] == "glibc"


def test_glibc_functions_are_found_and_called() -> None:
    """On glibc both calls happen (this machine and CI's run glibc)."""
    if not GLIBC:
        missing("malloc_trim and mallopt are glibc's; this C library is not glibc")
    assert heap.map_big_blocks() is True
    assert heap.malloc_trim() is True


def test_trimmer_trims_at_most_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ticks within the interval do nothing; the first tick after it trims, once."""
    trims: list[int] = []
    monkeypatch.setattr(heap, "malloc_trim", lambda: trims.append(1) or True)
    now = [100.0]
    trimmer = heap.HeapTrimmer(10.0, clock=lambda: now[0])
    for t in (100.0, 105.0, 109.9):
        now[0] = t
        assert trimmer.tick() is False
    now[0] = 110.0
    assert trimmer.tick() is True
    assert trimmer.tick() is False
    now[0] = 125.0
    assert trimmer.tick() is True
    assert len(trims) == 2


def test_collector_is_paced_up_never_down() -> None:
    """The thresholds rise to GC_THRESHOLDS; a higher one set by the host program stays."""
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 500)
        heap.pace_collector()
        assert gc.get_threshold() == (heap.GC_THRESHOLDS[0], heap.GC_THRESHOLDS[1], 500)
    finally:
        gc.set_threshold(*saved)
