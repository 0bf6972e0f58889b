import numpy as np
import pytest

from helpers import assert_gradients
from minieffnet.ops.regularization import (drop_connect_backward, drop_connect_forward,
                                           dropout_backward, dropout_forward)

OPS = [(dropout_forward, dropout_backward), (drop_connect_forward, drop_connect_backward)]


@pytest.mark.parametrize("fwd,bwd", OPS)
@pytest.mark.parametrize("p", [0.0, 0.3])
@pytest.mark.parametrize("training", [True, False])
def test_gradient(fwd, bwd, p, training, rng):
    # A fresh Generator with a fixed seed in every call makes the forward deterministic.
    forward = lambda x: fwd(x, p, np.random.default_rng(7), training)  # noqa: E731
    assert_gradients(forward, bwd, {"x": rng.standard_normal((6, 2, 3, 2))})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_statistics(dtype, rng):
    x = np.ones((400, 500), dtype=dtype)
    p = 0.3
    out, _ = dropout_forward(x, p, rng)
    assert out.dtype == dtype
    assert abs(np.mean(out == 0) - p) < 0.005           # fraction dropped ~ p (sd ~ 0.0007)
    assert abs(out.mean() - 1.0) < 0.01                 # inverted scaling preserves the mean
    assert np.allclose(out[out != 0], 1 / (1 - p))      # survivors scaled by 1/(1-p)


@pytest.mark.parametrize("fwd", [dropout_forward, drop_connect_forward])
def test_eval_and_zero_p_are_identity(fwd, rng):
    x = rng.standard_normal((4, 3, 2, 2))
    state = rng.bit_generator.state
    for out, _ in (fwd(x, 0.5, rng, training=False), fwd(x, 0.0, rng)):
        np.testing.assert_array_equal(out, x)
    assert rng.bit_generator.state == state  # the identity draws nothing


@pytest.mark.parametrize("fwd,bwd", OPS)
def test_same_seed_same_mask(fwd, bwd):
    x = np.ones((64, 3, 2, 2))
    a, ca = fwd(x, 0.5, np.random.default_rng(3))
    b, cb = fwd(x, 0.5, np.random.default_rng(3))
    c, _ = fwd(x, 0.5, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(bwd(x, ca), bwd(x, cb))
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_drop_connect_drops_whole_samples(dtype, rng):
    x = rng.standard_normal((2000, 3, 2, 2)).astype(dtype) + 5  # no zeros of its own
    p = 0.2
    out, cache = drop_connect_forward(x, p, rng)
    assert out.dtype == dtype
    dropped = np.all(out == 0, axis=(1, 2, 3))
    kept = ~dropped
    np.testing.assert_allclose(out[kept], x[kept] / (1 - p), rtol=1e-6)
    assert np.all(out[dropped] == 0)
    assert abs(dropped.mean() - p) < 0.04              # sd of the fraction ~ 0.009
    dx = drop_connect_backward(np.ones_like(x), cache)
    assert dx.dtype == dtype and np.all(dx[dropped] == 0)
    np.testing.assert_allclose(dx[kept], 1 / (1 - p), rtol=1e-6)


@pytest.mark.parametrize("fwd", [dropout_forward, drop_connect_forward])
@pytest.mark.parametrize("args,msg", [
    ((np.ones(3), 1.0, np.random.default_rng(0)), r"drop probability must be in \[0, 1\)"),
    ((np.ones(3), -0.1, np.random.default_rng(0)), "drop probability"),
    ((np.ones(3), 0.5, np.random.RandomState(0)), "rng must be a numpy.random.Generator"),
    ((np.ones(3), 0.5, 0), "rng must be a numpy.random.Generator"),
    ((np.ones(3, dtype=int), 0.5, np.random.default_rng(0)), "float32 or float64"),
])
def test_bad_input_names_op(fwd, args, msg):
    with pytest.raises(ValueError, match=f"{fwd.__name__}: .*{msg}"):
        fwd(*args)


def test_drop_connect_needs_batch_axis():
    with pytest.raises(ValueError, match="drop_connect_forward: x must have a batch axis"):
        drop_connect_forward(np.array(1.0), 0.5, np.random.default_rng(0))


@pytest.mark.parametrize("fwd,bwd", OPS)
@pytest.mark.parametrize("training", [True, False])
def test_backward_shape_mismatch(fwd, bwd, training):
    _, cache = fwd(np.ones((2, 3)), 0.5, np.random.default_rng(0), training)
    with pytest.raises(ValueError, match=f"{bwd.__name__}: dout must have shape"):
        bwd(np.ones((3, 2)), cache)
