"""Optimisers, learning-rate schedules and the weight EMA (paper §5.2: RMSProp, staircase
exponential decay, EMA 0.9999), with ``np.savez``-able state for exact resumption."""
from .ema import EMA
from .optimizers import SGD, AdamW, Optimizer, RMSProp
from .schedules import (SCHEDULES, constant, exponential_staircase, make_schedule, one_cycle,
                        triangular, warmup_cosine)

__all__ = ["EMA", "SGD", "AdamW", "Optimizer", "RMSProp", "SCHEDULES", "constant",
           "exponential_staircase", "make_schedule", "one_cycle", "triangular", "warmup_cosine"]
