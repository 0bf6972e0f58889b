"""What training changes, as one value: :class:`TrainingState`.

A run's state is spread over its objects (the model's weights and random stream, the
optimiser, the EMA, the training loader's random stream) and its position. Exact resumption
needs all of it: :class:`minieffnet.train.Trainer` builds a :class:`TrainingState` to save a
checkpoint (:func:`minieffnet.checkpoint.save_training_checkpoint`) and applies one read back
from a checkpoint (:func:`minieffnet.checkpoint.training_state`); the time-budget measurement
applies the one it took before measuring, which undoes every change its steps made.

What a state does *not* hold is fixed for the whole run: the configuration, the class names,
the normalisation statistics, the network's architecture, and the data the run trains on (its
fingerprint, :mod:`minieffnet.data_fingerprint`, which a resumed run must match).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TrainingState:
    """Everything a run needs to continue bit for bit from a step boundary.

    model: ``model.state_dict()`` (parameters and BatchNorm running statistics).
    optimizer: ``optimizer.state_dict()`` (learning rate, momenta, step counts).
    ema: ``ema.state_dict()``, None when the run keeps no EMA.
    model_rng: the bit-generator state of ``model.rng`` (dropout, stochastic depth).
    loader_rng: the bit-generator state of the training loader's Generator (shuffle,
    augmentation) *when the current epoch began*: continuing re-makes the ``batch`` batches
    already trained on, which replays their random draws.
    epoch, batch, step: completed epochs, batches done in the current epoch, optimiser steps.
    totals: running sums of the current epoch (``loss_sum``, ``correct``, ``seen``,
    ``train_time_s``).
    elapsed_s: the run's wall time so far, over all sessions.
    """

    model: dict[str, np.ndarray]
    optimizer: dict[str, Any]
    ema: dict[str, Any] | None
    model_rng: dict[str, Any]
    loader_rng: dict[str, Any]
    epoch: int
    batch: int
    step: int
    totals: dict[str, float]
    elapsed_s: float
