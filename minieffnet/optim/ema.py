"""Exponential moving average of the weights, used for evaluation (paper §5.2: decay 0.9999)."""
from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from ..nn.parameter import Parameter
from ._state import load_into, param_keys


class EMA:
    """Shadow copies of the parameters (and optionally buffers), averaged after each step.

    After every optimiser step, :meth:`update` moves each shadow towards its live array::

        shadow = decay_t * shadow + (1 - decay_t) * live

    with ``decay_t = decay``, or with ``warmup=True`` TensorFlow's
    ``decay_t = min(decay, (1 + t) / (10 + t))``, ``t`` counting this update from 1 (the paper's
    code passes the already-incremented global step). Warm-up matters for short runs: with
    ``decay = 0.9999`` the plain average needs ~10k steps to forget the random initialisation.
    Shadows start as copies of the live values at construction, so build the EMA after loading
    any pretrained weights.

    Buffers: BatchNorm running statistics are buffers, not parameters, so they are averaged
    only if passed as ``buffers`` (name -> the live array, e.g. ``dict(model.named_buffers())``).
    The paper's TensorFlow code averages them (trainable variables plus moving averages), as
    timm's ``ModelEmaV2`` does; pass them to match it. The arrays must be updated in place by
    their owner (an owner that rebinds the attribute leaves the EMA reading a stale array).

    Attributes: ``shadow`` (key -> averaged array; keys are parameter names, or indices for
    unnamed parameters, and buffer names) and ``num_updates`` (a 0-d int64 array).

    Evaluation: ``with ema.applied(): evaluate(model)`` puts the averages into the live arrays,
    in place, and restores the training values afterwards, even if evaluation raises.
    """

    def __init__(self, params: Iterable[Parameter], decay: float = 0.9999, warmup: bool = False,
                 buffers: Mapping[str, np.ndarray] | None = None):
        if not 0 <= decay <= 1:
            raise ValueError(f"decay must lie in [0, 1], got {decay}")
        self.decay = float(decay)
        self.warmup = warmup
        params = list(params)
        self._live: dict[str, Parameter | np.ndarray] = dict(zip(param_keys(params), params))
        for name, buf in (buffers or {}).items():
            if name in self._live:
                raise ValueError(f"EMA: buffer name {name!r} collides with a parameter key")
            self._live[name] = buf
        self.shadow = {key: self._array(key).copy() for key in self._live}
        self.num_updates = np.zeros((), np.int64)

    def _array(self, key: str) -> np.ndarray:
        """The live array behind ``key``; read through the parameter each time, as ``p.data``
        may be rebound (e.g. by a model's ``load_state_dict`` into a fresh array)."""
        live = self._live[key]
        return live.data if isinstance(live, Parameter) else live

    def current_decay(self) -> float:
        """The decay the next :meth:`update` will use."""
        if not self.warmup:
            return self.decay
        t = int(self.num_updates) + 1
        return min(self.decay, (1 + t) / (10 + t))

    def update(self) -> None:
        """Move every shadow towards its live array; call after each optimiser step."""
        decay = self.current_decay()
        for key, shadow in self.shadow.items():
            live = self._array(key)
            # live + decay * (shadow - live): the same average, computed in place with no
            # temporary; the difference is small, so it loses little to rounding.
            shadow -= live
            shadow *= decay
            shadow += live
        self.num_updates += 1

    def swap(self) -> None:
        """Exchange the live values and the averages, in place; a second swap undoes it."""
        for key, shadow in self.shadow.items():
            live = self._array(key)
            saved = live.copy()
            live[...] = shadow
            shadow[...] = saved

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Within the block the live arrays hold the averages; afterwards, the training values.

        Do not call :meth:`update` inside the block.
        """
        self.swap()
        try:
            yield
        finally:
            self.swap()

    def state_dict(self) -> dict[str, Any]:
        """``num_updates`` and a copy of every shadow, keyed ``"shadow.<name>"``."""
        state: dict[str, Any] = {"num_updates": int(self.num_updates)}
        state.update((f"shadow.{key}", shadow.copy()) for key, shadow in self.shadow.items())
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved, in place; ValueError names any mismatched key."""
        targets = {f"shadow.{key}": shadow for key, shadow in self.shadow.items()}
        load_into({"num_updates": self.num_updates, **targets}, state, "EMA")
