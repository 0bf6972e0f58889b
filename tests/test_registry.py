"""Every registered op, under every backend it lists: gradients and backend agreement.

One spec per op (minieffnet/ops/registry.py) runs against every backend, as minitorch's
tests do. The per-op test files keep what is particular to an op (known values, PyTorch,
edge cases, error messages); what every op must satisfy lives here, so a newly registered op
is tested without a new test, and a public op that is not registered fails.
"""
import dataclasses
import inspect

import numpy as np
import pytest

from helpers import GRAD_TOL, assert_close
from minieffnet import ops, opcheck, use_backend
from minieffnet.backend import BACKENDS
from minieffnet.ops.batchnorm import batchnorm2d_backward
from minieffnet.ops.registry import OPS, unregistered_ops

BY_NAME = {spec.name: spec for spec in OPS}
PAIRS = [pytest.param(spec, b, id=f"{spec.name}-{b}") for spec in OPS for b in spec.backends]
FAST = [pytest.param(spec, b, id=f"{spec.name}-{b}")
        for spec in OPS for b in spec.backends if b != "numpy"]


def test_every_public_op_is_registered(monkeypatch):
    assert unregistered_ops() == []
    assert len(BY_NAME) == len(OPS), "spec names must be unique"
    for spec in OPS:  # each spec names a real public op and real backends
        assert set(spec.backends) <= set(BACKENDS), spec.name
        assert any(inspect.isfunction(getattr(ops, n, None))
                   for n in (spec.op, f"{spec.op}_forward")), spec.op
    # A new public op without a spec is reported (and fails check-ops).
    monkeypatch.setattr(ops, "new_op_forward", lambda x: (x, None), raising=False)
    assert unregistered_ops() == ["new_op_forward"]


@pytest.mark.parametrize("spec,backend_name", PAIRS)
def test_gradients(spec, backend_name):
    errors = opcheck.check_op(spec, backend_name)
    assert set(errors) == set(spec.grad_names), "every input and parameter is checked"
    for name, error in errors.items():
        assert error < GRAD_TOL, f"[{backend_name}] {spec.name} d{name}: {error:.2e}"


def _run(spec, backend_name, inputs, shape, dout_seed=1):
    """Forward and backward under one backend on copies of ``inputs`` (BatchNorm updates its
    running statistics in place); returns out, the gradients and the inputs afterwards."""
    inputs = {k: v.copy() for k, v in inputs.items()}
    with use_backend(backend_name):
        out, cache = spec.forward_at(shape)(**inputs)
        dout = np.random.default_rng(dout_seed).standard_normal(np.shape(out)).astype(out.dtype)
        grads = spec.backward(dout, cache)
    return out, grads if isinstance(grads, tuple) else (grads,), inputs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spec,backend_name", FAST)
def test_backend_matches_numpy_reference(spec, backend_name, dtype):
    shape = spec.shape_for(backend_name)
    inputs = spec.make_inputs(np.random.default_rng(0), shape, dtype)
    ref_out, ref_grads, ref_after = _run(spec, "numpy", inputs, shape)
    out, grads, after = _run(spec, backend_name, inputs, shape)
    what = f"[{backend_name}] {spec.name}"
    assert_close(out, ref_out, dtype, f"{what} out")
    assert len(grads) == len(ref_grads) == len(spec.grad_names)
    for name, g, ref in zip(spec.grad_names, grads, ref_grads):
        assert_close(g, ref, dtype, f"{what} d{name}")
    for name in inputs:
        assert_close(after[name], ref_after[name], dtype, f"{what} {name} after the forward")


def test_wrong_backward_is_caught():
    # The classic BatchNorm bug: the training backward without the paths through the batch
    # mean and variance (the evaluation formula dx = gamma * inv_std * dout).
    spec = BY_NAME["batchnorm2d train"]
    wrong = dataclasses.replace(spec, backward=lambda dout, cache: batchnorm2d_backward(
        dout, cache._replace(training=False)))
    for backend_name in spec.backends:
        errors = opcheck.check_op(wrong, backend_name)
        assert errors["x"] > 1e-2, errors
        assert errors["gamma"] < GRAD_TOL and errors["beta"] < GRAD_TOL  # unaffected
    rows = opcheck.run_op_checks(ops=[wrong])
    assert [name for _, name, errs in rows if max(errs.values()) > opcheck.TOLERANCE] == ["x"]


def test_check_ops_table_fails_on_a_bad_row(monkeypatch, capsys):
    monkeypatch.setattr(opcheck, "all_op_checks",
                        lambda seed: ([("good op", "x", {"numpy": 1e-9}),
                                       ("bad op", "x", {"numpy": 1e-3})], "cuda: not run"))
    assert opcheck.print_op_table() == 1
    out = capsys.readouterr().out
    assert "bad op" in out and " NO" in out and "NOT all below" in out
