"""The one list of ops: how to build each op's inputs, what gets gradients, where it runs.

Every public op of :mod:`minieffnet.ops` has at least one :class:`OpSpec` in :data:`OPS` (an
op with modes, such as BatchNorm's training / evaluation and fused swish, has one per mode).
Three consumers read this list and nothing else, so an op registered here is checked, tested
and timed everywhere:

* ``minieffnet check-ops`` (:mod:`minieffnet.opcheck`) gradient-checks every spec under every
  backend it lists;
* ``tests/test_registry.py`` gradient-checks every spec and holds its backends equal in
  float32 and float64, and fails when a public op has no spec;
* ``benchmarks/run_all.py`` times every spec with a :class:`Bench` over the layers of B0.

A spec's *shape* is a tuple of sizes and hyper-parameters in the layout its ``make_inputs``
documents; the benchmark shape of an op is the batch followed by a key of
``benchmarks/_common.op_shapes`` (e.g. depthwise ``(N, C, H, k, stride)``), and the check
shapes use the same layout.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .activations import sigmoid_backward, sigmoid_forward, swish_backward, swish_forward
from .batchnorm import batchnorm2d_backward, batchnorm2d_forward
from .conv import (conv2d_backward, conv2d_forward, pointwise_conv2d_backward,
                   pointwise_conv2d_forward)
from .conv_bn import conv_bn_eval_backward, conv_bn_eval_forward
from .depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward
from .depthwise_bn import depthwise_bn_eval_backward, depthwise_bn_eval_forward
from .linear import linear_backward, linear_forward
from .loss import softmax_cross_entropy
from .pooling import global_avg_pool_backward, global_avg_pool_forward
from .regularization import (drop_connect_backward, drop_connect_forward, dropout_backward,
                             dropout_forward)
from .squeeze_excite import squeeze_excite_backward, squeeze_excite_forward

CPU = ("numpy", "numba")
# The depthwise convolution is the op with numba.cuda kernels; under the "cuda" backend the
# other ops run their Numba path, so listing "cuda" for them would check Numba twice.
WITH_CUDA = CPU + ("cuda",)


@dataclass(frozen=True)
class Bench:
    """Where an op is timed: ``shapes`` names the ``op_shapes`` entry listing the op's shapes
    in one B0 forward pass; ``row`` is the benchmark table's row label."""
    shapes: str
    row: str


def _no_options(shape: tuple) -> dict:
    return {}


@dataclass(frozen=True)
class OpSpec:
    """One public op in one mode, and everything needed to check, test and time it.

    name: the label ``check-ops`` prints, unique. op: the public op exercised,
        ``ops.<op>_forward`` / ``ops.<op>_backward`` (or ``ops.<op>`` for the loss).
    forward: ``forward(**inputs, **options(shape)) -> (out, cache)``; deterministic (random
        ops draw from a freshly seeded Generator on every call, as finite differences need).
    backward: ``backward(dout, cache)`` -> the gradients of ``grad_names``, in that order.
    make_inputs: ``make_inputs(rng, shape, dtype) -> {name: array}``, random inputs in dtype.
    grad_names: the inputs backward returns gradients of (other inputs, e.g. BatchNorm's
        running statistics, get none).
    check_shape: a small shape for gradient checks and backend agreement.
    options: ``options(shape) -> dict``, the forward's non-array arguments a shape implies
        (a stride, labels).
    backends: the backends the op is checked under.
    cuda_check_shape: a tiny shape for the "cuda" backend, which the tests and ``check-ops``
        run in Numba's CUDA simulator (about 0.2 ms per GPU thread).
    bench: where the op is timed, or None for ops a B0 step does not run on their own.
    """
    name: str
    op: str
    forward: Callable
    backward: Callable
    make_inputs: Callable[[np.random.Generator, tuple, type], dict]
    grad_names: tuple[str, ...]
    check_shape: tuple
    options: Callable[[tuple], dict] = _no_options
    backends: tuple[str, ...] = CPU
    cuda_check_shape: tuple | None = None
    bench: Bench | None = None

    def forward_at(self, shape: tuple) -> Callable:
        """``forward(**inputs) -> (out, cache)`` with the options of ``shape`` bound."""
        return functools.partial(self.forward, **self.options(shape))

    def shape_for(self, backend_name: str) -> tuple:
        """The check shape under ``backend_name`` (the tiny one for "cuda")."""
        return self.cuda_check_shape if backend_name == "cuda" else self.check_shape


# --- inputs --------------------------------------------------------------------------------
def _normal(rng: np.random.Generator, dtype, *shape: int) -> np.ndarray:
    # Drawn in float64 and cast, so float32 and float64 inputs of one seed are the same numbers.
    return rng.standard_normal(shape).astype(dtype)


def _image(rng, shape, dtype) -> dict:
    """shape (N, C, H): x (N, C, H, H)."""
    N, C, H = shape
    return {"x": _normal(rng, dtype, N, C, H, H)}


def _batchnorm(rng, shape, dtype) -> dict:
    """shape (N, C, H): x (N, C, H, H), gamma, beta, running_mean, running_var (C,)."""
    N, C, H = shape
    return {"x": _normal(rng, dtype, N, C, H, H), "gamma": 1 + 0.5 * _normal(rng, dtype, C),
            "beta": _normal(rng, dtype, C), **_running_stats(rng, C, dtype)}


def _running_stats(rng, C: int, dtype) -> dict:
    return {"running_mean": _normal(rng, dtype, C),
            "running_var": rng.uniform(0.5, 2.0, C).astype(dtype)}


def _depthwise(rng, shape, dtype) -> dict:
    """shape (N, C, H, k, stride): x (N, C, H, H), w (C, 1, k, k)."""
    N, C, H, k, _ = shape
    return {"x": _normal(rng, dtype, N, C, H, H), "w": _normal(rng, dtype, C, 1, k, k)}


def _depthwise_bn(rng, shape, dtype) -> dict:
    """shape (N, C, H, k, stride): the depthwise inputs and an evaluation BatchNorm's."""
    C = shape[1]
    return {**_depthwise(rng, shape, dtype), "gamma": 1 + 0.5 * _normal(rng, dtype, C),
            "beta": _normal(rng, dtype, C), **_running_stats(rng, C, dtype)}


def _stride(shape) -> dict:
    return {"stride": shape[-1]}


def _conv(rng, shape, dtype) -> dict:
    """shape (N, C_in, C_out, H, k, stride): x (N, C_in, H, H), w (C_out, C_in, k, k)."""
    N, Cin, Cout, H, k, _ = shape
    return {"x": _normal(rng, dtype, N, Cin, H, H), "w": _normal(rng, dtype, Cout, Cin, k, k)}


def _conv_bias(rng, shape, dtype) -> dict:
    """shape (N, C_in, C_out, H, k, stride): :func:`_conv`'s inputs and b (C_out,)."""
    return {**_conv(rng, shape, dtype), "b": _normal(rng, dtype, shape[2])}


def _conv_bn(rng, shape, dtype) -> dict:
    """shape (N, C_in, C_out, H, k, stride): :func:`_conv`'s inputs and an evaluation
    BatchNorm's on the C_out output channels."""
    C = shape[2]
    return {**_conv(rng, shape, dtype), "gamma": 1 + 0.5 * _normal(rng, dtype, C),
            "beta": _normal(rng, dtype, C), **_running_stats(rng, C, dtype)}


def _pointwise(rng, shape, dtype) -> dict:
    """shape (N, C_in, C_out, H): x (N, C_in, H, H), w (C_out, C_in, 1, 1)."""
    N, Cin, Cout, H = shape
    return {"x": _normal(rng, dtype, N, Cin, H, H), "w": _normal(rng, dtype, Cout, Cin, 1, 1)}


def _squeeze_excite(rng, shape, dtype) -> dict:
    """shape (N, C, H, C_squeezed): x (N, C, H, H), w1 (Cr, C), b1 (Cr,), w2 (C, Cr), b2 (C,)."""
    N, C, H, Cr = shape
    return {"x": _normal(rng, dtype, N, C, H, H), "w1": _normal(rng, dtype, Cr, C),
            "b1": _normal(rng, dtype, Cr), "w2": _normal(rng, dtype, C, Cr),
            "b2": _normal(rng, dtype, C)}


def _linear(rng, shape, dtype) -> dict:
    """shape (N, D, M): x (N, D), w (M, D), b (M,)."""
    N, D, M = shape
    return {"x": _normal(rng, dtype, N, D), "w": _normal(rng, dtype, M, D),
            "b": _normal(rng, dtype, M)}


def _logits(rng, shape, dtype) -> dict:
    """shape (N, K): logits (N, K)."""
    return {"logits": _normal(rng, dtype, *shape)}


def _labels(shape) -> dict:
    N, K = shape
    return {"labels": np.arange(N) % K}


# --- forwards that fix an op's mode ---------------------------------------------------------
def _batchnorm_mode(training: bool, activation: str | None) -> Callable:
    def forward(x, gamma, beta, running_mean, running_var):
        return batchnorm2d_forward(x, gamma, beta, running_mean, running_var,
                                   training=training, activation=activation)
    return forward


def _seeded(fn: Callable, p: float) -> Callable:
    """A random op whose every call draws the same mask (finite differences need that)."""
    return lambda x: fn(x, p, np.random.default_rng(7))


def _cross_entropy(logits, labels, label_smoothing=0.1):
    """The loss as an op: out is the loss as a 0-d array in logits' dtype, cache dlogits."""
    loss, dlogits = softmax_cross_entropy(logits, labels, label_smoothing)
    return np.asarray(loss, dtype=logits.dtype), dlogits


def _cross_entropy_backward(dout, dlogits):
    return dlogits * dout


def _first_two(backward: Callable) -> Callable:
    """Drop the trailing ``db = None`` of a bias-free convolution."""
    return lambda dout, cache: backward(dout, cache)[:2]


_BN = ("x", "gamma", "beta")

OPS: tuple[OpSpec, ...] = (
    OpSpec("sigmoid", "sigmoid", sigmoid_forward, sigmoid_backward, _image, ("x",), (2, 3, 4)),
    OpSpec("swish", "swish", swish_forward, swish_backward, _image, ("x",), (2, 3, 4),
           bench=Bench("swish", "swish")),
    OpSpec("batchnorm2d train", "batchnorm2d", _batchnorm_mode(True, None),
           batchnorm2d_backward, _batchnorm, _BN, (2, 3, 4),
           bench=Bench("batchnorm", "batchnorm")),
    OpSpec("batchnorm2d train + swish", "batchnorm2d", _batchnorm_mode(True, "swish"),
           batchnorm2d_backward, _batchnorm, _BN, (2, 3, 4),
           bench=Bench("batchnorm_swish", "batchnorm + swish (fused)")),
    OpSpec("batchnorm2d eval", "batchnorm2d", _batchnorm_mode(False, None),
           batchnorm2d_backward, _batchnorm, _BN, (2, 3, 4)),
    OpSpec("batchnorm2d eval + swish", "batchnorm2d", _batchnorm_mode(False, "swish"),
           batchnorm2d_backward, _batchnorm, _BN, (2, 3, 4)),
    OpSpec("depthwise 3x3 s1", "depthwise_conv2d", depthwise_conv2d_forward,
           depthwise_conv2d_backward, _depthwise, ("x", "w"), (2, 3, 5, 3, 1), _stride, WITH_CUDA,
           cuda_check_shape=(1, 1, 3, 3, 1), bench=Bench("depthwise", "depthwise conv")),
    OpSpec("depthwise 5x5 s2 same", "depthwise_conv2d",
           functools.partial(depthwise_conv2d_forward, padding="same"),
           depthwise_conv2d_backward, _depthwise, ("x", "w"), (2, 3, 6, 5, 2), _stride, WITH_CUDA,
           cuda_check_shape=(1, 1, 4, 5, 2)),
    OpSpec("depthwise+BN eval+swish 3x3 s1", "depthwise_bn_eval", depthwise_bn_eval_forward,
           depthwise_bn_eval_backward, _depthwise_bn, ("x", "w", "gamma", "beta"),
           (2, 3, 5, 3, 1), _stride,
           bench=Bench("depthwise", "depthwise + BN + swish (eval, fused)")),
    OpSpec("depthwise+BN eval 5x5 s2 same", "depthwise_bn_eval",
           functools.partial(depthwise_bn_eval_forward, padding="same", activation=None),
           depthwise_bn_eval_backward, _depthwise_bn, ("x", "w", "gamma", "beta"),
           (2, 3, 6, 5, 2), _stride),
    # The stem as the model runs it: no bias (BatchNorm follows). The bias is checked by the
    # 1x1 entry below, which also covers conv2d's hand-off to the pointwise path.
    OpSpec("conv2d 3x3 s2 (stem)", "conv2d", conv2d_forward, _first_two(conv2d_backward),
           _conv, ("x", "w"), (2, 3, 4, 5, 3, 2), _stride, bench=Bench("stem", "stem conv")),
    OpSpec("conv2d 1x1 + bias", "conv2d", conv2d_forward, conv2d_backward, _conv_bias,
           ("x", "w", "b"), (2, 4, 6, 5, 1, 1), _stride),
    # BatchNorm folded into the convolution: every 1x1 conv + BN of MBConv in evaluation,
    # with swish (expand, head) and without (project), and the stem (im2col path).
    OpSpec("conv+BN eval+swish 1x1", "conv_bn_eval", conv_bn_eval_forward,
           conv_bn_eval_backward, _conv_bn, ("x", "w", "gamma", "beta"), (2, 4, 6, 5, 1, 1),
           _stride),
    OpSpec("conv+BN eval 3x3 s2 same", "conv_bn_eval",
           functools.partial(conv_bn_eval_forward, padding="same", activation=None),
           conv_bn_eval_backward, _conv_bn, ("x", "w", "gamma", "beta"), (2, 3, 4, 5, 3, 2),
           _stride),
    OpSpec("pointwise conv2d", "pointwise_conv2d", pointwise_conv2d_forward,
           pointwise_conv2d_backward, _pointwise, ("x", "w"), (2, 3, 5, 4),
           bench=Bench("pointwise", "pointwise conv")),
    OpSpec("squeeze_excite", "squeeze_excite", squeeze_excite_forward, squeeze_excite_backward,
           _squeeze_excite, ("x", "w1", "b1", "w2", "b2"), (2, 4, 5, 2),
           bench=Bench("squeeze_excite", "squeeze-excite")),
    OpSpec("linear", "linear", linear_forward, linear_backward, _linear, ("x", "w", "b"),
           (4, 5, 3), bench=Bench("linear", "linear")),
    OpSpec("global_avg_pool", "global_avg_pool", global_avg_pool_forward,
           global_avg_pool_backward, _image, ("x",), (2, 3, 4),
           bench=Bench("global_avg_pool", "global avg pool")),
    OpSpec("dropout p=0.3", "dropout", _seeded(dropout_forward, 0.3), dropout_backward, _image,
           ("x",), (2, 4, 5)),
    OpSpec("drop_connect p=0.5", "drop_connect", _seeded(drop_connect_forward, 0.5),
           drop_connect_backward, _image, ("x",), (6, 2, 3)),
    OpSpec("softmax_cross_entropy ls=0.1", "softmax_cross_entropy", _cross_entropy,
           _cross_entropy_backward, _logits, ("logits",), (3, 4), _labels),
)


def unregistered_ops() -> list[str]:
    """The public op functions of :mod:`minieffnet.ops` (``*_forward``, ``*_backward``, the
    loss) that no spec in :data:`OPS` exercises; empty when the registry is complete."""
    from .. import ops
    public = {n for n, v in vars(ops).items()
              if not n.startswith("_") and callable(v) and not isinstance(v, type)}
    covered = {n for s in OPS for n in (s.op, f"{s.op}_forward", f"{s.op}_backward")}
    return sorted(public - covered)
