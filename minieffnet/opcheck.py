"""``minieffnet check-ops``: gradient-check every op in float64 and print one table.

Each row runs :func:`minieffnet.gradcheck.check_gradients` on a small random input under the
NumPy reference and under the Numba fast path, so a learner sees at a glance that every
hand-written backward agrees with finite differences (relative error around 1e-9).
"""
from __future__ import annotations

import numpy as np

from . import ops
from .backend import BACKENDS, use_backend
from .gradcheck import check_gradients

TOLERANCE = 1e-6


def _seeded(fn, **fixed):
    """Wrap a random op so every call draws the same mask (finite differences need that)."""
    return lambda **xs: fn(**xs, rng=np.random.default_rng(7), **fixed)


def op_cases(rng: np.random.Generator) -> list[tuple]:
    """Rows ``(label, forward, backward, inputs, grad_names)`` covering every public op."""
    x = rng.standard_normal((2, 4, 5, 5))
    C = x.shape[1]
    return [
        ("sigmoid", ops.sigmoid_forward, ops.sigmoid_backward, {"x": x}, None),
        ("swish", ops.swish_forward, ops.swish_backward, {"x": x}, None),
        ("batchnorm2d (train)",
         lambda x, gamma, beta: ops.batchnorm2d_forward(x, gamma, beta, np.zeros(C), np.ones(C)),
         ops.batchnorm2d_backward,
         {"x": x, "gamma": rng.standard_normal(C), "beta": rng.standard_normal(C)}, None),
        ("depthwise 3x3 s1", lambda x, w: ops.depthwise_conv2d_forward(x, w, 1),
         ops.depthwise_conv2d_backward, {"x": x, "w": rng.standard_normal((C, 1, 3, 3))}, None),
        ("depthwise 5x5 s2 same", lambda x, w: ops.depthwise_conv2d_forward(x, w, 2, "same"),
         ops.depthwise_conv2d_backward, {"x": x, "w": rng.standard_normal((C, 1, 5, 5))}, None),
        ("conv2d 3x3 s2", lambda x, w, b: ops.conv2d_forward(x, w, b, 2),
         ops.conv2d_backward, {"x": x, "w": rng.standard_normal((3, C, 3, 3)),
                               "b": rng.standard_normal(3)}, None),
        ("conv2d 1x1 (pointwise)", lambda x, w: ops.conv2d_forward(x, w),
         lambda d, c: ops.conv2d_backward(d, c)[:2],
         {"x": x, "w": rng.standard_normal((6, C, 1, 1))}, None),
        ("squeeze_excite", ops.squeeze_excite_forward, ops.squeeze_excite_backward,
         {"x": x, "w1": rng.standard_normal((2, C)), "b1": rng.standard_normal(2),
          "w2": rng.standard_normal((C, 2)), "b2": rng.standard_normal(C)}, None),
        ("linear", ops.linear_forward, ops.linear_backward,
         {"x": rng.standard_normal((3, 4)), "w": rng.standard_normal((2, 4)),
          "b": rng.standard_normal(2)}, None),
        ("global_avg_pool", ops.global_avg_pool_forward, ops.global_avg_pool_backward,
         {"x": x}, None),
        ("dropout p=0.3", _seeded(ops.dropout_forward, p=0.3), ops.dropout_backward,
         {"x": x}, None),
        ("drop_connect p=0.5", _seeded(ops.drop_connect_forward, p=0.5),
         ops.drop_connect_backward, {"x": x}, None),
        ("softmax_cross_entropy ls=0.1",
         lambda logits: (ops.softmax_cross_entropy(logits, np.array([0, 2, 1]), 0.1)[0],
                         logits),
         lambda d, logits: d * ops.softmax_cross_entropy(logits, np.array([0, 2, 1]), 0.1)[1],
         {"logits": rng.standard_normal((3, 4))}, None),
    ]


def run_op_checks(seed: int = 0) -> list[tuple[str, str, dict[str, float]]]:
    """``[(op, input, {backend: relative error})]`` for every op and every input."""
    rows = []
    for label, fwd, bwd, inputs, names in op_cases(np.random.default_rng(seed)):
        errors: dict[str, dict[str, float]] = {}
        for backend in BACKENDS:
            with use_backend(backend):
                for name, r in check_gradients(fwd, bwd, inputs, names).items():
                    errors.setdefault(name, {})[backend] = r.error
        rows += [(label, name, errs) for name, errs in errors.items()]
    return rows


def print_op_table(seed: int = 0) -> int:
    """Print the table; return 0 if every error is below 1e-6, else 1 (a CLI exit code)."""
    rows = run_op_checks(seed)
    print(f"{'op':<30}{'input':<8}" + "".join(f"{b + ' rel.err':>16}" for b in BACKENDS) + "  ok")
    ok = True
    for label, name, errs in rows:
        good = all(e < TOLERANCE for e in errs.values())
        ok &= good
        print(f"{label:<30}{name:<8}" + "".join(f"{errs[b]:>16.2e}" for b in BACKENDS)
              + f"  {'yes' if good else 'NO'}")
    print(f"\n{len(rows)} gradients checked in float64 by centred differences "
          f"(h=1e-6, random upstream gradient): {'all' if ok else 'NOT all'} below {TOLERANCE:g}")
    return 0 if ok else 1
