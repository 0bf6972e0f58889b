"""Assertions shared by the op tests."""
from __future__ import annotations

import numpy as np

from minieffnet import check_gradients, use_backend

GRAD_TOL = 1e-6  # float64 centred differences; ops typically land near 1e-9


def assert_gradients(forward, backward, inputs, grad_names=None, tol=GRAD_TOL, backends=("numpy", "numba")):
    """Gradient-check an op under each backend; every input's error must be below ``tol``."""
    for name in backends:
        with use_backend(name):
            results = check_gradients(forward, backward, inputs, grad_names)
        assert results, "no gradient was checked"
        for r in results.values():
            assert r.error < tol, f"[{name}] {r}"


def run_both(fn, *args, **kwargs):
    """Run ``fn`` under the numpy and numba backends and return both results."""
    with use_backend("numpy"):
        ref = fn(*args, **kwargs)
    with use_backend("numba"):
        fast = fn(*args, **kwargs)
    return ref, fast


def assert_close(a, b, dtype, what=""):
    """Agreement to the precision of ``dtype`` (float32: ~1e-5 relative, float64: ~1e-12)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs {b.shape}"
    assert a.dtype == b.dtype == dtype, f"{what}: dtype {a.dtype}/{b.dtype}, expected {dtype}"
    rtol, atol = (1e-4, 1e-5) if dtype == np.float32 else (1e-10, 1e-12)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)


def assert_fused_layer_matches_two_layers(fused_cls, conv, bn, x, dout):
    """A fused evaluation layer (ConvBN, DepthwiseBN) built from ``conv`` and ``bn`` (float64)
    equals the plain ``Sequential(conv, bn)`` in evaluation, forward and backward (every
    gradient), and in training runs the two layers exactly."""
    import copy
    from minieffnet.nn import Sequential
    fused, plain = fused_cls(conv, bn).eval(), Sequential(*copy.deepcopy([conv, bn])).eval()
    assert_close(fused(x), plain(x), np.float64, "forward")
    assert_close(fused.backward(dout), plain.backward(dout), np.float64, "dx")
    for (name, p), (_, q) in zip(fused.named_parameters(), plain.named_parameters()):
        assert_close(p.grad, q.grad, np.float64, name)
    np.testing.assert_array_equal(fused.train()(x), plain.train()(x))
