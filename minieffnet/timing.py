"""Wall-clock timing of a callable, as the lessons, the time budget and the benchmarks use it.

The first call of anything that runs Numba kernels compiles them (or loads them from the
cache), so every measurement here starts with untimed warm-up calls.
"""
from __future__ import annotations

import time
from typing import Callable


def wall_times(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> list[float]:
    """Seconds each of ``repeats`` calls of ``fn()`` takes, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def best_time(fn: Callable[[], object], repeats: int = 5) -> float:
    """The fastest of ``repeats`` calls of ``fn()`` in seconds, after one warm-up call: the
    least disturbed by other work on the machine."""
    return min(wall_times(fn, repeats))
