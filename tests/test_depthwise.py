import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from helpers import assert_close, assert_gradients, run_both
from minieffnet import check_gradients, use_backend
from minieffnet.ops.depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward


def _inputs(rng, N, C, H, W, k, dtype=np.float64):
    return (rng.standard_normal((N, C, H, W)).astype(dtype),
            rng.standard_normal((C, 1, k, k)).astype(dtype))


@pytest.mark.parametrize("padding", ["symmetric", "same"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("k,H,W", [(3, 5, 6), (5, 6, 7), (7, 7, 8)])
def test_gradient(k, H, W, stride, padding, rng):
    x, w = _inputs(rng, 2, 2, H, W, k)
    assert_gradients(lambda x, w: depthwise_conv2d_forward(x, w, stride, padding),
                     depthwise_conv2d_backward, {"x": x, "w": w})


def test_gradient_check_catches_wrong_backward(rng):
    x, w = _inputs(rng, 1, 2, 5, 5, 3)

    def flipped_backward(dout, cache):  # the classic slip: dw with the kernel flipped
        dx, dw = depthwise_conv2d_backward(dout, cache)
        return dx, dw[:, :, ::-1, ::-1]

    res = check_gradients(depthwise_conv2d_forward, flipped_backward, {"x": x, "w": w})
    assert res["x"].error < 1e-7 and res["w"].error > 1e-2


def test_known_values():
    # A 3x3 box filter on a 3x3 image of ones, zero padding: corners see 4 ones, edges 6,
    # the centre 9. With stride 2 and "same" padding TF pads nothing on top/left for k=3,
    # H=4 (total padding 1 goes bottom/right), so out[0, 0] sums the top-left 3x3 block.
    x = np.ones((1, 1, 3, 3))
    w = np.ones((1, 1, 3, 3))
    for out in run_both(lambda: depthwise_conv2d_forward(x, w)[0]):
        np.testing.assert_array_equal(out[0, 0], [[4, 6, 4], [6, 9, 6], [4, 6, 4]])
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    for out in run_both(lambda: depthwise_conv2d_forward(x, w, 2, "same")[0]):
        assert out.shape == (1, 1, 2, 2)
        assert out[0, 0, 0, 0] == x[0, 0, :3, :3].sum()


@settings(deadline=None, max_examples=25)
@given(dtype=st.sampled_from([np.float32, np.float64]), N=st.integers(1, 3),
       C=st.integers(1, 40), H=st.integers(1, 11), W=st.integers(1, 11),
       k=st.sampled_from([3, 5, 7]), stride=st.sampled_from([1, 2]),
       padding=st.sampled_from(["symmetric", "same"]), transpose=st.booleans(),
       seed=st.integers(0, 2**31))
def test_numba_matches_reference(dtype, N, C, H, W, k, stride, padding, transpose, seed):
    # C up to 40 spans several channel blocks and a partial last one; H, W down to 1 make
    # every tap but the centre fall into the padding.
    rng = np.random.default_rng(seed)
    x, w = _inputs(rng, N, C, H, W, k, dtype)
    if transpose:  # a non-contiguous view with the same shape
        x = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    (ref, cache_r), (fast, _) = run_both(depthwise_conv2d_forward, x, w, stride, padding)
    assert_close(ref, fast, dtype, "forward")
    dout = rng.standard_normal(ref.shape).astype(dtype)
    (dx_r, dw_r), (dx_f, dw_f) = run_both(depthwise_conv2d_backward, dout, cache_r)
    assert_close(dx_r, dx_f, dtype, "dx")
    assert_close(dw_r, dw_f, dtype, "dw")


@pytest.mark.parametrize("N,C,H,W,k,stride,padding", [
    (3, 37, 9, 9, 5, 2, "same"),         # 32-lane tiles: two channel blocks, the last partial
    (2, 20, 32, 33, 3, 1, "symmetric"),  # 16-lane tiles, odd width, several image groups
    (5, 70, 3, 2, 7, 1, "same"),         # 64-lane tiles on an image smaller than the kernel
])
def test_numba_tiling_edge_cases(N, C, H, W, k, stride, padding, rng):
    # Shapes hypothesis rarely draws: several channel blocks and image groups per call.
    x, w = _inputs(rng, N, C, H, W, k, np.float32)
    (ref, cache), (fast, _) = run_both(depthwise_conv2d_forward, x, w, stride, padding)
    assert_close(ref, fast, np.float32, "forward")
    dout = rng.standard_normal(ref.shape).astype(np.float32)
    for r, f, name in zip(*run_both(depthwise_conv2d_backward, dout, cache), ("dx", "dw")):
        assert_close(r, f, np.float32, name)


@pytest.mark.torch
@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("k,stride,H", [(3, 1, 8), (3, 2, 9), (5, 2, 8), (7, 1, 6)])
def test_matches_torch(k, stride, H, backend, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w = _inputs(rng, 2, 5, H, H + 1, k)
    with use_backend(backend):
        out, cache = depthwise_conv2d_forward(x, w, stride)
        dout = rng.standard_normal(out.shape)
        dx, dw = depthwise_conv2d_backward(dout, cache)
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    ot = F.conv2d(xt, wt, stride=stride, padding=(k - 1) // 2, groups=x.shape[1])
    ot.backward(torch.tensor(dout))
    assert_close(out, ot.detach().numpy(), np.float64, "forward")
    assert_close(dx, xt.grad.numpy(), np.float64, "dx")
    assert_close(dw, wt.grad.numpy(), np.float64, "dw")


def test_same_padding_is_tf_asymmetric(rng):
    # TF "same", stride 2, 8x8 input, k=5: out = ceil(8/2) = 4 needs (4-1)*2 + 5 - 8 = 3 zeros,
    # 1 before and 2 after -- unlike torchvision's 2 and 2. Pad by hand and slide the kernel.
    x, w = _inputs(rng, 1, 3, 8, 8, 5)
    xpad = np.pad(x, ((0, 0), (0, 0), (1, 2), (1, 2)))
    expected = np.zeros((1, 3, 4, 4))
    for ky in range(5):
        for kx in range(5):
            expected += w[None, :, 0, ky, kx, None, None] * xpad[:, :, ky:ky + 7:2, kx:kx + 7:2]
    for out in run_both(lambda: depthwise_conv2d_forward(x, w, 2, "same")[0]):
        assert_close(out, expected, np.float64, "same padding")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_output_dtype_follows_input(dtype, rng):
    x, w = _inputs(rng, 1, 2, 4, 4, 3, dtype)
    for backend in ("numpy", "numba"):
        with use_backend(backend):
            out, cache = depthwise_conv2d_forward(x, w)
            dx, dw = depthwise_conv2d_backward(np.ones(out.shape), cache)  # float64 dout
        assert out.dtype == dx.dtype == dw.dtype == dtype


BAD_FORWARD = [
    (dict(x=np.ones((2, 3, 5))), "x must have 4 dimensions"),
    (dict(x=np.ones((1, 3, 5, 5), dtype=np.int32)), "x must be float32 or float64"),
    (dict(x=[[[[1.0]]]]), "x must be a numpy.ndarray"),
    (dict(w=np.ones((3, 3, 3))), "w must have 4 dimensions"),
    (dict(w=np.ones((2, 1, 3, 3))), r"w must have shape \(C, 1, k, k\) with C = 3"),
    (dict(w=np.ones((3, 2, 3, 3))), r"w must have shape \(C, 1, k, k\)"),
    (dict(w=np.ones((3, 1, 3, 5))), r"w must have shape \(C, 1, k, k\)"),
    (dict(w=np.ones((3, 1, 4, 4))), "kernel size must be odd"),
    (dict(w=np.ones((3, 1, 3, 3), dtype=np.float32)), "arrays must share one dtype"),
    (dict(stride=3), "stride must be 1 or 2"),
    (dict(stride=1.0), "stride must be the integer 1 or 2"),
    (dict(padding="valid"), "unknown padding"),
]


@pytest.mark.parametrize("override,msg", BAD_FORWARD)
def test_bad_forward_input_names_op(override, msg):
    args = dict(x=np.ones((1, 3, 5, 5)), w=np.ones((3, 1, 3, 3)), stride=1, padding="symmetric")
    args.update(override)
    with pytest.raises(ValueError, match=f"depthwise_conv2d_forward: {msg}"):
        depthwise_conv2d_forward(**args)


def test_bad_backward_input_names_op():
    _, cache = depthwise_conv2d_forward(np.ones((1, 3, 5, 5)), np.ones((3, 1, 3, 3)), 2)
    with pytest.raises(ValueError, match=r"depthwise_conv2d_backward: dout must have shape "
                                         r"\(1, 3, 3, 3\)"):
        depthwise_conv2d_backward(np.ones((1, 3, 5, 5)), cache)
    with pytest.raises(ValueError, match="depthwise_conv2d_backward: dout must be float32"):
        depthwise_conv2d_backward(np.ones((1, 3, 3, 3), dtype=np.int64), cache)
