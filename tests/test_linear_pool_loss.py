import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from helpers import assert_close, assert_gradients, run_both
from minieffnet import numerical_gradient, rel_error
from minieffnet.ops.linear import linear_backward, linear_forward
from minieffnet.ops.loss import softmax_cross_entropy
from minieffnet.ops.pooling import global_avg_pool_backward, global_avg_pool_forward


# --- linear --------------------------------------------------------------------------------
# The gradient check of x, w and b under both backends is the registry's ("linear" in
# tests/test_registry.py).

def test_linear_without_bias(rng):
    inputs = {"x": rng.standard_normal((4, 5)), "w": rng.standard_normal((3, 5))}
    assert_gradients(lambda x, w: linear_forward(x, w, None), linear_backward, inputs,
                     ["x", "w", "b"])
    out, cache = linear_forward(inputs["x"], inputs["w"], None)
    assert linear_backward(np.ones_like(out), cache)[2] is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_dtype_follows_input(dtype, rng):
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in [(2, 3), (4, 3), (4,)])
    out, cache = linear_forward(x, w, b)
    assert out.dtype == dtype
    assert all(g.dtype == dtype for g in linear_backward(np.ones(out.shape), cache))


@pytest.mark.torch
def test_linear_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x, w, b = rng.standard_normal((5, 4)), rng.standard_normal((3, 4)), rng.standard_normal(3)
    out, cache = linear_forward(x, w, b)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    tout = torch.nn.functional.linear(tx, tw, tb)
    dout = rng.standard_normal(out.shape)
    tout.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-12, atol=1e-12)
    for ours, theirs in zip(linear_backward(dout, cache), (tx, tw, tb)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("args,msg", [
    ((np.ones(3), np.ones((2, 3)), None), "x must have 2 dimensions"),
    ((np.ones((1, 3)), np.ones(3), None), "w must have 2 dimensions"),
    ((np.ones((1, 3)), np.ones((2, 4)), None), "input features"),
    ((np.ones((1, 3)), np.ones((2, 3)), np.ones(3)), "b must have shape"),
    ((np.ones((1, 3)), np.ones((2, 3), dtype=np.float32), None), "share one dtype"),
    ((np.ones((1, 3), dtype=int), np.ones((2, 3)), None), "float32 or float64"),
])
def test_linear_bad_input_names_op(args, msg):
    with pytest.raises(ValueError, match=f"linear_forward: .*{msg}"):
        linear_forward(*args)


def test_linear_backward_shape_mismatch():
    _, cache = linear_forward(np.ones((2, 3)), np.ones((4, 3)), None)
    with pytest.raises(ValueError, match="linear_backward: dout must have shape"):
        linear_backward(np.ones((2, 3)), cache)


# --- global average pooling ----------------------------------------------------------------

def test_pool_gradient(rng):
    assert_gradients(global_avg_pool_forward, global_avg_pool_backward,
                     {"x": rng.standard_normal((2, 3, 4, 5))})


@settings(deadline=None, max_examples=25)
@given(st.sampled_from([np.float32, np.float64]),
       st.tuples(*[st.integers(1, 5)] * 4), st.booleans(), st.integers(0, 2**31))
def test_pool_numba_matches_reference(dtype, shape, transpose, seed):
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    if transpose:  # non-contiguous input
        x = x.transpose(0, 1, 3, 2)
    (ref, cache), (fast, _) = run_both(global_avg_pool_forward, x)
    assert_close(ref, fast, dtype, "pool forward")
    dx = global_avg_pool_backward(ref, cache)
    assert dx.shape == x.shape and dx.dtype == dtype


def test_pool_bad_input_names_op():
    with pytest.raises(ValueError, match="global_avg_pool_forward: x must have 4 dimensions"):
        global_avg_pool_forward(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="global_avg_pool_forward: x must be float32"):
        global_avg_pool_forward(np.ones((1, 2, 3, 4), dtype=np.int32))
    _, cache = global_avg_pool_forward(np.ones((1, 2, 3, 4)))
    with pytest.raises(ValueError, match="global_avg_pool_backward: dout must have shape"):
        global_avg_pool_backward(np.ones((2, 1)), cache)


# --- softmax cross-entropy -----------------------------------------------------------------

@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_loss_gradient(eps, rng):
    logits = rng.standard_normal((5, 4)) * 3
    labels = rng.integers(0, 4, size=5)
    _, dlogits = softmax_cross_entropy(logits, labels, eps)
    numeric = numerical_gradient(lambda: softmax_cross_entropy(logits, labels, eps)[0],
                                 logits, np.float64(1.0))
    assert rel_error(dlogits, numeric) < 1e-7


@pytest.mark.torch
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_loss_matches_torch(eps, rng):
    torch = pytest.importorskip("torch")
    logits, labels = rng.standard_normal((6, 5)) * 4, rng.integers(0, 5, size=6)
    loss, dlogits = softmax_cross_entropy(logits, labels, eps)
    t = torch.tensor(logits, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(t, torch.tensor(labels), label_smoothing=eps)
    tloss.backward()
    assert isinstance(loss, float)
    assert loss == pytest.approx(tloss.item(), rel=1e-12)
    np.testing.assert_allclose(dlogits, t.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_is_stable_for_huge_logits(dtype):
    logits = np.array([[1e4, 0.0, -1e4], [-3e4, 3e4, 0.0]], dtype=dtype)
    loss, dlogits = softmax_cross_entropy(logits, np.array([0, 0]))
    assert dlogits.dtype == dtype and np.all(np.isfinite(dlogits))
    assert loss == pytest.approx(6e4 / 2)  # sample 0: loss 0; sample 1: 3e4 - (-3e4)
    np.testing.assert_allclose(dlogits, [[0, 0, 0], [-0.5, 0.5, 0]], atol=1e-7)


@pytest.mark.parametrize("logits,labels,kwargs,msg", [
    (np.ones(3), [0], {}, "logits must have 2 dimensions"),
    (np.ones((2, 3), dtype=int), [0, 1], {}, "float32 or float64"),
    (np.ones((2, 3)), np.array([0.0, 1.0]), {}, "labels must be integers"),
    (np.ones((2, 3)), [0, 1, 2], {}, r"labels must have shape \(2,\)"),
    (np.ones((2, 3)), [0, 3], {}, r"labels must lie in \[0, 3\)"),
    (np.ones((2, 3)), [-1, 0], {}, r"labels must lie in \[0, 3\)"),
    (np.array([[0.0, np.nan], [1.0, 2.0]]), [0, 1], {}, "logits contain"),
    (np.array([[0.0, np.inf], [1.0, 2.0]]), [0, 1], {}, "NaN or infinity"),
    (np.ones((2, 3)), [0, 1], {"label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\)"),
    (np.ones((2, 3)), [0, 1], {"label_smoothing": -0.1}, "label_smoothing"),
    (np.ones((0, 3)), np.zeros(0, dtype=int), {}, "at least one row"),
])
def test_loss_bad_input_names_op(logits, labels, kwargs, msg):
    with pytest.raises(ValueError, match=f"softmax_cross_entropy: .*{msg}"):
        softmax_cross_entropy(logits, labels, **kwargs)
