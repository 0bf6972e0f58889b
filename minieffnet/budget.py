"""Fitting a run to a wall-time budget (``TrainConfig.time_budget``, ``minieffnet train
--time-budget MINUTES``).

The learning-rate schedule and progressive learning depend on the run's length, so the length
must be fixed before the first step and never change (exact resumption needs the schedule to
be a pure function of the step). So the trainer first *measures*: a few training steps at the
smallest and the largest training resolution and one evaluation batch, on the real model,
optimiser and data (:func:`measure`; the trainer restores their state afterwards), giving a
:class:`Timing`. Then :func:`fit_to_budget` picks the largest epoch count, up to the
configured ``epochs``, whose predicted wall time (training, the evaluations it will run, a
per-epoch overhead for the checkpoint and the curves) fits in what is left of the budget after
a reserve of :data:`RESERVE` (:func:`seconds_left`). The chosen count replaces ``epochs`` in
the run's ``config.json`` and checkpoint, so a resumed run keeps it.

Whole epochs only: the prediction can leave up to one epoch of the budget unused.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from .timing import wall_times

RESERVE = 0.03          # fraction of the budget kept back for what the measurement misses
EPOCH_OVERHEAD_S = 1.0  # per epoch: checkpoint (atomic .npz) and curves.png, measured ~0.5 s
WARMUP_STEPS = 2        # untimed steps first: Numba's compiled-code cache load, first-touch
TIMED_STEPS = 3         # timed steps per resolution; their median is the estimate


@dataclass(frozen=True)
class Timing:
    """Measured costs: seconds per training step at two resolutions (``step_s``: resolution
    -> seconds; one entry when training has one resolution) and seconds per image for one
    evaluation forward pass at the final resolution (``eval_image_s``)."""

    step_s: dict[int, float]
    eval_image_s: float

    def step_seconds(self, resolution: int) -> float:
        """Seconds per training step at ``resolution``: linear in the pixel count between
        (and beyond) the measured resolutions, as the convolutions' cost is."""
        (r0, t0), *rest = sorted(self.step_s.items())
        if not rest:
            return t0
        r1, t1 = rest[-1]
        return t0 + (t1 - t0) * (resolution ** 2 - r0 ** 2) / (r1 ** 2 - r0 ** 2)


def median_seconds(step: Callable[[], None], steps: int = TIMED_STEPS,
                   warmup: int = WARMUP_STEPS) -> float:
    """The median wall time of ``steps`` calls of ``step`` after ``warmup`` untimed ones."""
    return float(np.median(wall_times(step, steps, warmup)))


def measure(model: Any, loader: Any, resolutions: Iterable[int],
            train_step: Callable[[np.ndarray, np.ndarray], object],
            forward: Callable[[np.ndarray], object]) -> Timing:
    """The costs of a run, measured on its own model, optimiser and data.

    Times ``train_step(x, y)`` on batches of ``loader`` (a BatchLoader) at each of
    ``resolutions`` (set as ``loader.resolution``, smallest first, so the largest is timed
    last; duplicates count once), then ``forward(x)`` on one more batch of the largest, with
    ``model`` in eval mode: seconds per step, and per image of that batch ``x: (N, 3, R, R)``.
    Changes what the steps change (weights, optimiser state, both random streams), the
    loader's resolution and the model's mode: the caller puts them back.
    """
    def forever():
        while True:
            yield from loader

    step_s = {}
    for resolution in sorted(set(resolutions)):
        loader.resolution = resolution
        batches = forever()
        step_s[resolution] = median_seconds(lambda: train_step(*next(batches)))
    x, _ = next(batches)
    model.eval()
    return Timing(step_s, median_seconds(lambda: forward(x)) / len(x))


def seconds_left(budget_min: float, started: float) -> float:
    """Seconds that a budget of ``budget_min`` minutes leaves for the run, less the
    :data:`RESERVE`, when its clock started at ``started`` (a ``time.perf_counter()``
    reading)."""
    return 60 * budget_min * (1 - RESERVE) - (time.perf_counter() - started)


def fit_to_budget(available_s: float, max_epochs: int, *, steps_per_epoch: int,
                  timing: Timing, resolutions: Callable[[int], Iterable[int]],
                  eval_images: Callable[[int], Iterable[int]]) -> tuple[int, float]:
    """``(epochs, predicted seconds)``: the most epochs, up to ``max_epochs``, whose run
    fits in ``available_s`` (:func:`fit_epochs`), and that run's predicted wall time
    (:func:`run_seconds`).

    resolutions, eval_images: for a run of ``n`` epochs, :func:`run_seconds`'s per-epoch
    lists (progressive stages and the last epoch's evaluation depend on ``n``).
    """
    def predicted_s(epochs: int) -> float:
        return run_seconds(epochs, steps_per_epoch=steps_per_epoch, timing=timing,
                           resolutions=resolutions(epochs), eval_images=eval_images(epochs))

    epochs = fit_epochs(available_s, max_epochs, predicted_s)
    return epochs, predicted_s(epochs)


def fit_epochs(available_s: float, max_epochs: int,
               predicted_s: Callable[[int], float]) -> int:
    """The largest ``n <= max_epochs`` with ``predicted_s(n) <= available_s``.

    predicted_s: the predicted wall time of a whole run of n epochs (non-decreasing in n).
    Raises ValueError when not even one epoch fits, saying how long one would take.
    """
    one = predicted_s(1)
    if one > available_s:
        raise ValueError(f"the time budget leaves {available_s / 60:.1f} min, but one epoch "
                         f"would take about {one / 60:.1f} min: give a larger budget, a "
                         "smaller network or fewer images")
    lo, hi = 1, max_epochs  # predicted_s(lo) fits; find the last n that does
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if predicted_s(mid) <= available_s else (lo, mid - 1)
    return lo


def run_seconds(epochs: int, *, steps_per_epoch: int, timing: Timing,
                resolutions: Iterable[int], eval_images: Iterable[int]) -> float:
    """Predicted wall time of a run: ``steps_per_epoch`` steps at each epoch's training
    resolution (``resolutions``, one per epoch), each epoch's evaluated images
    (``eval_images``: images times forward passes per image, one entry per epoch), and
    :data:`EPOCH_OVERHEAD_S` per epoch."""
    train = sum(steps_per_epoch * timing.step_seconds(r) for r in resolutions)
    evaluation = sum(eval_images) * timing.eval_image_s
    return train + evaluation + epochs * EPOCH_OVERHEAD_S
