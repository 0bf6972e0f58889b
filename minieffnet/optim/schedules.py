"""Learning-rate schedules: pure functions of the (0-based) optimiser step.

Being pure, a resumed run needs only the step count to land on the same learning rate: the
trainer sets ``optimizer.lr = schedule(step)`` before each ``optimizer.step()``.

Warm-up everywhere follows the paper's TensorFlow code (``base_lr * step / warmup_steps`` for
``step < warmup_steps``): linear from 0, reaching ``base_lr`` exactly at ``step ==
warmup_steps``. The very first step therefore has lr 0; it still primes momentum buffers.
"""
from __future__ import annotations

import functools
import inspect
import math
from typing import Callable


def _warmup(step: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up value ``base_lr * step / warmup_steps`` (valid for step < warmup_steps)."""
    return base_lr * step / warmup_steps


def _cosine(progress: float, start: float, end: float) -> float:
    """Half-cosine from ``start`` (progress 0) to ``end`` (progress >= 1, where it stays)."""
    progress = min(max(progress, 0.0), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def constant(step: int, base_lr: float, warmup_steps: int = 0) -> float:
    """``base_lr`` at every step, after an optional linear warm-up."""
    if step < warmup_steps:
        return _warmup(step, warmup_steps, base_lr)
    return base_lr


def warmup_cosine(step: int, total_steps: int, base_lr: float, warmup_steps: int = 0,
                  final_lr: float = 0.0) -> float:
    """Linear warm-up to ``base_lr``, then half-cosine decay to ``final_lr`` at ``total_steps``.

    Midway between ``warmup_steps`` and ``total_steps`` the rate is ``(base_lr + final_lr) / 2``;
    from ``total_steps`` on it stays at ``final_lr``.
    """
    if step < warmup_steps:
        return _warmup(step, warmup_steps, base_lr)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return _cosine(progress, base_lr, final_lr)


def one_cycle(step: int, total_steps: int, base_lr: float, pct_start: float = 0.3,
              div_factor: float = 25.0, final_div_factor: float = 1e4) -> float:
    """Smith's one-cycle policy, equal to ``torch.optim.lr_scheduler.OneCycleLR`` (cosine).

    ``base_lr`` is the *peak* (OneCycleLR's ``max_lr``). The rate rises by half-cosine from
    ``base_lr / div_factor`` at step 0 to ``base_lr`` at step ``pct_start * total_steps - 1``,
    then falls to ``base_lr / div_factor / final_div_factor`` at step ``total_steps - 1`` and
    stays there. The default CIFAR recipe pairs it with SGD-Nesterov. Unlike OneCycleLR this
    does not cycle momentum (optimisers keep a fixed momentum).
    """
    initial_lr = base_lr / div_factor
    peak_step = pct_start * total_steps - 1
    if step <= peak_step:  # a peak at step 0 (one warm-up step) is reached at once, not 0/0
        return base_lr if peak_step <= 0 else _cosine(step / peak_step, initial_lr, base_lr)
    progress = (step - peak_step) / (total_steps - 1 - peak_step)
    return _cosine(progress, base_lr, initial_lr / final_div_factor)


def triangular(step: int, total_steps: int, base_lr: float, pct_start: float = 0.23,
               start_fraction: float = 0.2, final_fraction: float = 0.0) -> float:
    """Piecewise-linear rise and fall, the short-run CIFAR schedule: from
    ``start_fraction * base_lr`` at step 0 up to ``base_lr`` at step ``pct_start *
    total_steps``, then down to ``final_fraction * base_lr`` at step ``total_steps`` (where it
    stays).

    airbench94 (Jordan, 2024) uses ``triangle(start=0.2, peak=0.23, end=0.07)``; David Page's
    DAWNBench ResNet rises from 0 to its peak at epoch 5 of 24 and falls to 0 (``pct_start``
    0.21, both fractions 0). ``base_lr`` is the peak, as in :func:`one_cycle`, so the two are
    interchangeable in a config.
    """
    peak = pct_start * total_steps
    if step < peak:
        return base_lr * (start_fraction + (1 - start_fraction) * step / peak)
    progress = min(1.0, (step - peak) / max(1e-12, total_steps - peak))
    return base_lr * (1 - (1 - final_fraction) * progress)


def exponential_staircase(step: int, steps_per_epoch: int, base_lr: float, rate: float = 0.97,
                          every_epochs: float = 2.4, warmup_steps: int = 0) -> float:
    """The paper's schedule (§5.2): ``base_lr * rate ** floor(step / (every_epochs * spe))``.

    The paper uses ``base_lr = 0.256`` at batch 4096 (its code: 0.016 per 256 images, scaled
    linearly with the batch size), ``rate = 0.97`` every 2.4 epochs, after a 5-epoch linear
    warm-up. As in its code (``tf.train.exponential_decay(staircase=True)``) the decay counts
    from step 0, so warm-up does not delay the staircase.
    """
    if step < warmup_steps:
        return _warmup(step, warmup_steps, base_lr)
    return base_lr * rate ** math.floor(step / (every_epochs * steps_per_epoch))


SCHEDULES: dict[str, Callable[..., float]] = {
    "constant": constant,
    "warmup_cosine": warmup_cosine,
    "one_cycle": one_cycle,
    "triangular": triangular,
    "exponential_staircase": exponential_staircase,
}


def make_schedule(name: str, **kw) -> Callable[[int], float]:
    """The schedule ``name`` (a key of :data:`SCHEDULES`) with its arguments bound: step -> lr.

    Every schedule takes ``base_lr``, so ``make_schedule(name, base_lr=lr, **extra)`` works for
    all. Raises ValueError for an unknown name and TypeError, now rather than at the first
    step, for missing or unexpected arguments.
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose from {sorted(SCHEDULES)}")
    fn = SCHEDULES[name]
    inspect.signature(fn).bind(0, **kw)
    return functools.partial(fn, **kw)
