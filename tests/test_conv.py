import numpy as np
import pytest

from helpers import assert_close, assert_gradients
from minieffnet.ops import _blas
from minieffnet.ops.conv import (conv2d_backward, conv2d_forward, pointwise_conv2d_backward,
                                 pointwise_conv2d_forward)


def _conv(stride, padding, bias):
    """conv2d as a forward of named arrays, for the gradient checker."""
    if bias:
        return lambda x, w, b: conv2d_forward(x, w, b, stride, padding)
    return lambda x, w: conv2d_forward(x, w, None, stride, padding)


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["symmetric", "same"])
@pytest.mark.parametrize("hw", [(5, 5), (6, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_gradient(k, stride, padding, hw, bias, rng):
    inputs = {"x": rng.standard_normal((2, 2) + hw), "w": rng.standard_normal((3, 2, k, k))}
    if bias:
        inputs["b"] = rng.standard_normal(3)
    names = ["x", "w", "b"]  # without a bias, backward's db is None and the checker skips it
    assert_gradients(_conv(stride, padding, bias), conv2d_backward, inputs, names)


def test_pointwise_gradient(rng):
    assert_gradients(pointwise_conv2d_forward, pointwise_conv2d_backward,
                     {"x": rng.standard_normal((2, 3, 3, 4)),
                      "w": rng.standard_normal((5, 3, 1, 1))})


@pytest.mark.parametrize("threads", ["numba", "python pool"])
@pytest.mark.parametrize("fold", [False, True])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_blas_products_fold_or_not_equal_einsum(threads, fold, workers, rng, monkeypatch):
    # Both layouts of _blas (per-sample and batch-folded GEMMs), over 1-3 batch slices, on
    # an odd batch, on Numba's threads or the Python pool, give the plain products; the
    # thresholds are forced to pick the layout. The transposed weight and the strided
    # samples (a view, as im2col's columns are) are passed without copies.
    if threads == "python pool":
        monkeypatch.setattr(_blas, "gemm_address", lambda dtype: None)
    else:
        assert _blas.gemm_address(np.float64) is not None, "NumPy's OpenBLAS has no cblas"
    monkeypatch.setattr(_blas, "_workers", lambda: workers)
    monkeypatch.setattr(_blas, "FOLD_PRODUCT_MAX_PIXELS", 10**9 if fold else 0)
    monkeypatch.setattr(_blas, "FOLD_PRODUCT_MIN_WEIGHT_BYTES", 0)
    monkeypatch.setattr(_blas, "FOLD_OUTER_BELOW_PIXELS", 10**9 if fold else 0)
    x, d = rng.standard_normal((5, 4, 6)), rng.standard_normal((5, 3, 6))
    w = rng.standard_normal((3, 4))
    out = _blas.shared_matmul(w, x)
    assert out.flags.c_contiguous
    assert_close(out, np.einsum("ok,nkp->nop", w, x), np.float64)
    assert_close(_blas.shared_matmul(w.T, d), np.einsum("ok,nop->nkp", w, d), np.float64)
    assert_close(_blas.summed_outer(d, x), np.einsum("nop,nkp->ok", d, x), np.float64)
    strided = rng.standard_normal((4, 5, 6)).transpose(1, 0, 2)  # (5, 4, 6), rows 30 apart
    assert_close(_blas.shared_matmul(w, strided), np.einsum("ok,nkp->nop", w, strided),
                 np.float64)
    assert_close(_blas.summed_outer(d, strided), np.einsum("nop,nkp->ok", d, strided),
                 np.float64)
    x32, w32 = x.astype(np.float32), w.astype(np.float32)
    assert_close(_blas.shared_matmul(w32, x32), np.einsum("ok,nkp->nop", w32, x32), np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointwise_path_equals_im2col_path(dtype, rng):
    # A ring of zeros around a 1x1 kernel gives a 3x3 kernel computing the same function:
    # the 3x3 conv goes through im2col, the 1x1 one through the pointwise path.
    x = rng.standard_normal((2, 4, 5, 6)).astype(dtype)
    w1 = rng.standard_normal((3, 4, 1, 1)).astype(dtype)
    w3 = np.pad(w1, ((0, 0), (0, 0), (1, 1), (1, 1)))
    b = rng.standard_normal(3).astype(dtype)
    out1, c1 = conv2d_forward(x, w1, b)
    out3, c3 = conv2d_forward(x, w3, b)
    assert_close(out1, out3, dtype, "out")
    dout = rng.standard_normal(out1.shape).astype(dtype)
    dx1, dw1, db1 = conv2d_backward(dout, c1)
    dx3, dw3, db3 = conv2d_backward(dout, c3)
    assert_close(dx1, dx3, dtype, "dx")
    assert_close(dw1, dw3[:, :, 1:2, 1:2], dtype, "dw")
    assert_close(db1, db3, dtype, "db")
    pw_out, _ = pointwise_conv2d_forward(x, w1)
    assert_close(pw_out + b[:, None, None], out1, dtype, "pointwise op")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,stride", [(1, 1), (3, 2)])
def test_dtype_follows_input_and_non_contiguous_x(dtype, k, stride, rng):
    x = rng.standard_normal((4, 3, 6, 2)).astype(dtype).transpose(0, 1, 3, 2)[:, :, :, ::-1]
    w = rng.standard_normal((2, 3, k, k)).astype(dtype)
    out, cache = conv2d_forward(x, w, stride=stride)
    ref, _ = conv2d_forward(np.ascontiguousarray(x), w, stride=stride)
    assert out.dtype == dtype and out.flags.c_contiguous
    assert_close(out, ref, dtype, "non-contiguous x")
    dx, dw, db = conv2d_backward(np.ones(out.shape), cache)  # float64 dout: cast to dtype
    assert dx.dtype == dw.dtype == dtype and db is None


def _torch_conv(x, w, b, stride, padding):
    """torch reference: "same" pads explicitly (F.conv2d's padding="same" forbids stride 2)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    k = w.shape[-1]
    if padding == "symmetric":
        return F.conv2d(x, w, b, stride=stride, padding=(k - 1) // 2)
    from minieffnet.ops.padding import pad_amounts
    pt, pb = pad_amounts(x.shape[2], k, stride, "same")
    pl, pr = pad_amounts(x.shape[3], k, stride, "same")
    return F.conv2d(F.pad(x, (pl, pr, pt, pb)), w, b, stride=stride)


@pytest.mark.torch
@pytest.mark.parametrize("k,stride", [(1, 1), (1, 2), (3, 1), (3, 2), (5, 2)])
@pytest.mark.parametrize("padding", ["symmetric", "same"])
def test_matches_torch(k, stride, padding, rng):
    torch = pytest.importorskip("torch")
    x, w = rng.standard_normal((2, 3, 7, 8)), rng.standard_normal((4, 3, k, k))
    b = rng.standard_normal(4)
    out, cache = conv2d_forward(x, w, b, stride, padding)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    tout = _torch_conv(tx, tw, tb, stride, padding)
    dout = rng.standard_normal(out.shape)
    tout.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(conv2d_backward(dout, cache), (tx, tw, tb)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


X = np.ones((1, 2, 5, 5))
W = np.ones((3, 2, 3, 3))


@pytest.mark.parametrize("args,kwargs,msg", [
    ((np.ones((2, 5, 5)), W), {}, "x must have 4 dimensions"),
    ((X, np.ones((3, 2, 3))), {}, "w must have 4 dimensions"),
    ((X, np.ones((3, 4, 3, 3))), {}, "input channels"),
    ((X, np.ones((3, 2, 3, 1))), {}, "square"),
    ((X, np.ones((3, 2, 2, 2))), {}, "odd"),
    ((X, W, np.ones(4)), {}, "b must have shape"),
    ((X.astype(np.float32), W), {}, "share one dtype"),
    ((X.astype(np.int64), W.astype(np.int64)), {}, "float32 or float64"),
    ((X, W), {"stride": 3}, "stride"),
    ((X, W), {"padding": "valid"}, "padding"),
])
def test_bad_input_names_op(args, kwargs, msg):
    with pytest.raises(ValueError, match=f"conv2d_forward: .*{msg}"):
        conv2d_forward(*args, **kwargs)


def test_pointwise_rejects_larger_kernel():
    with pytest.raises(ValueError, match=r"pointwise_conv2d_forward: w must have shape \(O, C"):
        pointwise_conv2d_forward(X, W)


def test_backward_shape_mismatch():
    _, cache = conv2d_forward(X, W, stride=2)
    with pytest.raises(ValueError, match="conv2d_backward: dout must have shape"):
        conv2d_backward(np.ones((1, 3, 5, 5)), cache)
    _, cache = pointwise_conv2d_forward(X, np.ones((3, 2, 1, 1)))
    with pytest.raises(ValueError, match="pointwise_conv2d_backward: dout must have shape"):
        pointwise_conv2d_backward(np.ones((1, 3, 4, 5)), cache)
