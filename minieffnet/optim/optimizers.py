"""Optimisers: SGD (with Nesterov momentum), RMSProp in TensorFlow's form, and AdamW.

The paper (Tan & Le, 2019, §5.2) trains with RMSProp, decay 0.9 and momentum 0.9, weight decay
1e-5 and an initial learning rate of 0.256 decayed by 0.97 every 2.4 epochs (the schedule is in
:mod:`.schedules`). SGD and AdamW are here because small-budget CIFAR recipes favour them.

Every optimiser

* updates ``p.data`` in place, in the parameter's dtype, through in-place NumPy operations and
  reused scratch arrays (no allocation after the first step);
* skips parameters whose ``grad`` is None, leaving their state untouched (as torch.optim does);
* applies weight decay only to parameters with ``p.decay`` True: the paper's and torchvision's
  recipes exempt BatchNorm scale/shift and biases;
* has a plain ``lr`` attribute that a schedule may set before each ``step()``;
* saves its whole state as ``dict[str, np.ndarray | float]`` (``np.savez``-able, no pickle)
  whose reload continues training bit for bit.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import numpy as np

from ..nn.parameter import Parameter
from ._state import Scratch, load_into, param_keys


def _zero_count(data: np.ndarray) -> np.ndarray:
    """A per-parameter step counter: a 0-d int64 array, so it lives in state like any buffer."""
    return np.zeros((), np.int64)


class Optimizer:
    """Base class: parameters, per-parameter state buffers ("slots") and the learning rate.

    A subclass declares ``slots``, mapping each buffer name to its initialiser (called with the
    parameter's data; buffers are created up front so the state's keys never change), and
    implements ``_update(p, *buffers)`` with the buffers in ``slots`` order.
    State keys are ``"lr"`` and ``"<slot>.<parameter name>"`` (see :func:`._state.param_keys`).
    """

    slots: dict[str, Callable[[np.ndarray], np.ndarray]] = {}

    def __init__(self, params: Iterable[Parameter], lr: float, weight_decay: float):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if lr < 0 or weight_decay < 0:
            raise ValueError(f"lr and weight_decay must be >= 0, got {lr} and {weight_decay}")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self._keys = param_keys(self.params)
        self.state = {slot: [init(p.data) for p in self.params] for slot, init in self.slots.items()}
        self._scratch = Scratch()

    def step(self) -> None:
        """Update every parameter that has a gradient, using the current ``self.lr``."""
        for i, p in enumerate(self.params):
            if p.grad is not None:
                self._update(p, *(buffers[i] for buffers in self.state.values()))

    def zero_grad(self) -> None:
        """Set every parameter's gradient to None (PyTorch's ``set_to_none`` default)."""
        for p in self.params:
            p.zero_grad()

    def _update(self, p: Parameter, *buffers: np.ndarray) -> None:
        raise NotImplementedError

    def _named_buffers(self) -> dict[str, np.ndarray]:
        return {f"{slot}.{key}": buf
                for slot, buffers in self.state.items() for key, buf in zip(self._keys, buffers)}

    def state_dict(self) -> dict[str, Any]:
        """The learning rate and copies of every buffer (momenta, square averages, step counts)."""
        state: dict[str, Any] = {"lr": self.lr}
        state.update((key, buf.copy()) for key, buf in self._named_buffers().items())
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved, in place; ValueError names any mismatched key."""
        lr = np.zeros(())
        load_into({"lr": lr, **self._named_buffers()}, state, type(self).__name__)
        self.lr = float(lr)

    def _coupled_grad(self, p: Parameter) -> np.ndarray:
        """The gradient with L2 weight decay folded in, ``g + weight_decay * p``.

        Coupled decay, as torch.optim.SGD and the paper's TensorFlow code (an L2 term in the
        loss) apply it. Written into scratch slot 0; ``p.grad`` itself, unmodified, when the
        parameter is exempt from decay.
        """
        if not (p.decay and self.weight_decay):
            return p.grad
        g = self._scratch.get(p.data, 0)
        np.multiply(p.data, self.weight_decay, out=g)
        g += p.grad
        return g


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, matching ``torch.optim.SGD`` (dampening 0).

    With ``g = grad + weight_decay * p`` (coupled decay)::

        buf = momentum * buf + g          # PyTorch's convention: lr is applied after,
        p  -= lr * buf                    # so a schedule changes the step at once
        p  -= lr * (g + momentum * buf)   # instead, with nesterov=True

    PyTorch initialises ``buf`` to the first gradient; starting from zeros gives the same
    ``momentum * 0 + g``. ``momentum=0`` is plain SGD.
    """

    slots = {"momentum_buffer": np.zeros_like}

    def __init__(self, params: Iterable[Parameter], lr: float, momentum: float = 0.9,
                 nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        if momentum < 0 or (nesterov and momentum == 0):
            raise ValueError(f"need momentum >= 0, and > 0 for Nesterov; got {momentum}")
        self.momentum = float(momentum)
        self.nesterov = nesterov

    def _update(self, p: Parameter, buf: np.ndarray) -> None:
        g = self._coupled_grad(p)
        buf *= self.momentum
        buf += g
        delta = self._scratch.get(p.data, 1)
        if self.nesterov:
            np.multiply(buf, self.momentum, out=delta)
            delta += g
            delta *= self.lr
        else:
            np.multiply(buf, self.lr, out=delta)
        p.data -= delta


class RMSProp(Optimizer):
    """RMSProp as TensorFlow implements it, the variant the paper trained with (§5.2).

    With ``g = grad + weight_decay * p`` (coupled decay, the L2 loss term of the paper's code)::

        ms   = decay * ms + (1 - decay) * g**2
        mom  = momentum * mom + lr * g / sqrt(ms + eps)
        p   -= mom

    Differences from ``torch.optim.RMSprop`` (timm ships this variant as ``RMSpropTF``):

    * ``eps`` is added *inside* the square root, so it bounds the step by ``lr * g / sqrt(eps)``
      rather than ``lr * g / eps``; the paper's ``eps = 1e-3`` is therefore a mild damping,
      not a no-op.
    * the mean square ``ms`` starts at ONES, as TF1's ``tf.train.RMSPropOptimizer`` does (torch
      starts at zeros). The first steps are then small (about ``lr * g``) instead of
      ``lr * sign(g) / sqrt(1 - decay)``: a built-in warm-up.
    * ``lr`` multiplies the gradient *before* it enters the momentum buffer, so a learning-rate
      change takes effect gradually, over the momentum's memory (torch applies lr afterwards).
    """

    slots = {"square_avg": np.ones_like, "momentum_buffer": np.zeros_like}

    def __init__(self, params: Iterable[Parameter], lr: float, decay: float = 0.9,
                 momentum: float = 0.9, eps: float = 1e-3, weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        if not (0 <= decay < 1 and momentum >= 0 and eps >= 0):
            raise ValueError(f"need 0 <= decay < 1, momentum >= 0, eps >= 0; "
                             f"got {decay}, {momentum}, {eps}")
        self.decay = float(decay)
        self.momentum = float(momentum)
        self.eps = float(eps)

    def _update(self, p: Parameter, ms: np.ndarray, mom: np.ndarray) -> None:
        g = self._coupled_grad(p)
        work = self._scratch.get(p.data, 1)
        ms *= self.decay
        np.multiply(g, g, out=work)
        work *= 1 - self.decay
        ms += work
        np.add(ms, self.eps, out=work)
        np.sqrt(work, out=work)
        np.divide(g, work, out=work)
        work *= self.lr
        mom *= self.momentum
        mom += work
        p.data -= mom


class AdamW(Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter), matching ``torch.optim.AdamW``.

    Per parameter, with its own step count ``t`` (a parameter skipped for lack of a gradient
    does not advance it, as in PyTorch)::

        p   *= 1 - lr * weight_decay      # decoupled: not part of the gradient statistics
        m    = m + (1 - beta1) * (g - m)
        v    = beta2 * v + (1 - beta2) * g**2
        p   -= (lr / (1 - beta1**t)) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    The operations are grouped as PyTorch's single-tensor implementation groups them, so that
    float64 results agree to the last few ulps.
    """

    slots = {"exp_avg": np.zeros_like, "exp_avg_sq": np.zeros_like, "step": _zero_count}

    def __init__(self, params: Iterable[Parameter], lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, lr, weight_decay)
        beta1, beta2 = betas
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1 and eps >= 0):
            raise ValueError(f"need betas in [0, 1) and eps >= 0; got {betas}, {eps}")
        self.betas = (float(beta1), float(beta2))
        self.eps = float(eps)

    def _update(self, p: Parameter, m: np.ndarray, v: np.ndarray, step: np.ndarray) -> None:
        beta1, beta2 = self.betas
        step += 1
        t = int(step)
        if p.decay and self.weight_decay:
            p.data *= 1 - self.lr * self.weight_decay
        g = p.grad
        work = self._scratch.get(p.data, 0)
        np.subtract(g, m, out=work)  # m.lerp_(g, 1 - beta1) in PyTorch
        work *= 1 - beta1
        m += work
        v *= beta2
        np.multiply(g, 1 - beta2, out=work)
        work *= g
        v += work
        np.sqrt(v, out=work)
        work /= (1 - beta2 ** t) ** 0.5
        work += self.eps
        delta = self._scratch.get(p.data, 1)
        np.multiply(m, self.lr / (1 - beta1 ** t), out=delta)
        delta /= work
        p.data -= delta
