"""minieffnet.timing: warm-up calls are not timed, and the best time is the least."""
import time

from minieffnet.timing import best_time, wall_times


def test_warmup_calls_run_untimed_and_every_repeat_is_timed():
    calls = []

    def slow_first():
        calls.append(len(calls))
        time.sleep(0.05 if len(calls) == 1 else 0.001)   # the first call "compiles"

    times = wall_times(slow_first, repeats=4, warmup=1)
    assert len(calls) == 5 and len(times) == 4
    assert all(0.0005 < t < 0.04 for t in times)          # the slow first call is not among them
    assert best_time(lambda: time.sleep(0.002), repeats=3) >= 0.0015
