"""Numerical gradient checking, used by the tests and the lessons.

The check follows CS231n's recipe with two guards against vacuous passes:

* centred differences in float64, ``(f(x + h) - f(x - h)) / 2h`` with ``h = 1e-6``;
* a **random upstream gradient** ``dout``: we differentiate the scalar ``sum(f(x) * dout)``.
  With a constant ``dout`` BatchNorm's and softmax's input gradients are identically zero
  and any backward that returns zeros would pass.

The error is ``max|a - n| / max(1e-8, max(|a| + |n|))``: the worst absolute difference,
normalised by the gradient's scale, so elements that are nearly zero in both do not dominate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """``max|a - b| / max(1e-8, max(|a| + |b|))`` over all elements."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(1e-8, float(np.max(np.abs(a) + np.abs(b)))))


def numerical_gradient(f: Callable[[], np.ndarray], x: np.ndarray, dout: np.ndarray,
                       h: float = 1e-6) -> np.ndarray:
    """Centred-difference gradient of ``sum(f() * dout)`` with respect to ``x``.

    ``f`` takes no arguments and reads ``x``, which is perturbed in place one element at a
    time and restored. Returns an array shaped like x.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        plus = np.sum(f() * dout)
        x[i] = old - h
        minus = np.sum(f() * dout)
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


@dataclass
class GradCheck:
    """Result of checking one input: the error, the worst element and both gradients."""

    name: str
    error: float
    worst_index: tuple
    analytic: np.ndarray
    numeric: np.ndarray

    def __str__(self) -> str:
        i = self.worst_index
        return (f"{self.name:>10}  rel.err {self.error:.2e}  worst at {i}: "
                f"analytic {self.analytic[i]:+.6e}  numeric {self.numeric[i]:+.6e}")


def check_gradients(forward: Callable, backward: Callable, inputs: Mapping[str, np.ndarray],
                    grad_names: Sequence[str] | None = None, seed: int = 0,
                    h: float = 1e-6, numeric_forward: Callable | None = None
                    ) -> dict[str, GradCheck]:
    """Compare an op's backward with finite differences, for every input it returns a grad of.

    forward: called as ``forward(**inputs)``, returns ``(out, cache)``; must be deterministic
        (pass a fresh seeded Generator inside it for random ops).
    backward: called as ``backward(dout, cache)``; returns one gradient or a tuple of them.
    inputs: name -> array; converted to float64 copies here.
    grad_names: the input names in the order backward returns their gradients
        (default: the order of ``inputs``). A returned ``None`` is skipped.
    numeric_forward: the function differentiated by finite differences, called like forward
        (default: forward itself); another implementation of the same op, for a forward too
        slow to call twice per input element (CUDA kernels in Numba's simulator).

    Returns ``{name: GradCheck}``.
    """
    xs = {k: np.array(v, dtype=np.float64) for k, v in inputs.items()}
    out, cache = forward(**xs)
    # Salted so that dout is never the same stream as an input drawn from default_rng(seed):
    # dout proportional to x would make e.g. BatchNorm's dx vanish and the check vacuous.
    dout = np.random.default_rng([seed, 0x5EED]).standard_normal(np.shape(out))
    grads = backward(dout, cache)
    if not isinstance(grads, tuple):
        grads = (grads,)
    names = list(grad_names) if grad_names is not None else list(xs)
    if len(names) != len(grads):
        raise ValueError(f"check_gradients: backward returned {len(grads)} gradients "
                         f"for names {names}")
    results = {}
    for name, analytic in zip(names, grads):
        if analytic is None:
            continue
        numeric = numerical_gradient(lambda: (numeric_forward or forward)(**xs)[0], xs[name],
                                     dout, h)
        analytic = np.asarray(analytic, dtype=np.float64)
        if analytic.shape != numeric.shape:
            raise ValueError(f"check_gradients: gradient of {name} has shape {analytic.shape},"
                             f" expected {numeric.shape}")
        worst = np.unravel_index(np.argmax(np.abs(analytic - numeric)), numeric.shape)
        results[name] = GradCheck(name, rel_error(analytic, numeric), tuple(int(i) for i in worst),
                                  analytic, numeric)
    return results


def compare(name: str, ours, reference, rtol: float = 1e-5, atol: float = 1e-7,
            width: int = 16) -> str:
    """One row of a table in the style of makemore's ``cmp()``: exact / approximate / max
    difference / shape.

    Returns the row (the lessons print it). ``name`` fills a column of ``width`` characters;
    a longer name gets a line of its own and the row continues on the next line, indented by
    that column, so the columns of a table stay aligned whatever the labels. A value still
    bound to ``...`` (the stub an exercise notebook leaves for you to fill in) is reported as
    not done yet; arrays of different shapes are reported as a shape mismatch.
    """
    label = f"{name:<{width}} " if len(name) <= width else f"{name}\n{'':<{width}} "
    if ours is ... or reference is ...:
        return f"{label}not done yet (still ...)"
    ours, reference = np.asarray(ours), np.asarray(reference)
    if ours.shape != reference.shape:
        return f"{label}shape mismatch: {ours.shape} vs {reference.shape}"
    exact = bool(np.array_equal(ours, reference))
    approx = bool(np.allclose(ours, reference, rtol=rtol, atol=atol))
    diff = float(np.max(np.abs(ours.astype(np.float64) - reference))) if ours.size else 0.0
    return (f"{label}exact: {str(exact):5} approximate: {str(approx):5} "
            f"max diff: {diff:.2e}  shape {ours.shape}")
