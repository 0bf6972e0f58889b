"""The numba.cuda depthwise kernels against the NumPy reference.

conftest.py sets NUMBA_ENABLE_CUDASIM=1 unless a real GPU is asked for, so these run in
Numba's simulator, which runs every GPU thread as a Python thread. To keep that fast *and*
to make tiny images span several tiles (so halos cross tile borders and the reduction has
several rounds), the module's tile edge and block size are shrunk for the simulator; the
kernels are written for any tile edge and any power-of-two block.
"""
import os

import numpy as np
import pytest

from minieffnet import use_backend
from minieffnet.ops import depthwise_cuda as dc
from minieffnet.ops.depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
SIZES = ("_TILE", "_PATCH", "_DPATCH", "_THREADS")
PRODUCTION = {name: getattr(dc, name) for name in SIZES}


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    if SIMULATOR:  # on a real GPU the sizes are compiled in; keep the production ones
        tile = 4
        monkeypatch.setattr(dc, "_TILE", tile)
        monkeypatch.setattr(dc, "_PATCH", (tile - 1) * 2 + dc._MAX_K)
        monkeypatch.setattr(dc, "_DPATCH", tile + dc._MAX_K - 1)
        monkeypatch.setattr(dc, "_THREADS", 8)


def _reference(x, w, stride, padding, dout):
    with use_backend("numpy"):
        out, cache = depthwise_conv2d_forward(x, w, stride, padding)
        dx, dw = depthwise_conv2d_backward(dout, cache)
    return out, dx, dw


# (N, C, H, W, k, stride, padding): k 3/5, stride 1/2, both paddings, odd and even sizes.
CASES = [
    (1, 2, 7, 6, 3, 1, "symmetric"),
    (2, 1, 6, 7, 3, 2, "same"),
    (1, 2, 6, 6, 5, 2, "symmetric"),
    (1, 1, 7, 5, 5, 1, "same"),
    (1, 1, 2, 3, 5, 1, "symmetric"),  # image smaller than the kernel: mostly padding
]


@pytest.mark.parametrize("method", dc.METHODS)
@pytest.mark.parametrize("N,C,H,W,k,stride,padding", CASES)
def test_matches_reference(N, C, H, W, k, stride, padding, method):
    rng = np.random.default_rng(k * 100 + H * 10 + W)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((C, 1, k, k)).astype(np.float32)
    out = dc.depthwise_conv2d_forward_cuda(x, w, stride, padding, method)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx, dw = dc.depthwise_conv2d_backward_cuda(dout, x, w, stride, padding, method)
    ref_out, ref_dx, ref_dw = _reference(x, w, stride, padding, dout)
    for name, got, ref in [("out", out, ref_out), ("dx", dx, ref_dx), ("dw", dw, ref_dw)]:
        assert got.dtype == np.float32 and got.shape == ref.shape, name
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5, err_msg=f"{method} {name}")


def test_production_block_sizes(monkeypatch):
    # One case with the real 16x16 tiles and 128-thread reduction (slow in the simulator).
    for name, value in PRODUCTION.items():
        monkeypatch.setattr(dc, name, value)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 1, 5, 6)).astype(np.float32)
    w = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)
    dout = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)
    got = (dc.depthwise_conv2d_forward_cuda(x, w, 2),
           *dc.depthwise_conv2d_backward_cuda(dout, x, w, 2))
    for g, ref in zip(got, _reference(x, w, 2, "symmetric", dout)):
        np.testing.assert_allclose(g, ref, rtol=1e-5, atol=1e-5)


def test_float64_and_large_kernel_fallback():
    # k = 9 exceeds the tiled kernels' shared arrays: "tiled" must fall back, not misindex.
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 1, 5, 4)), rng.standard_normal((1, 1, 9, 9))
    dout = rng.standard_normal((1, 1, 3, 2))
    out = dc.depthwise_conv2d_forward_cuda(x, w, 2, "same")
    dx, dw = dc.depthwise_conv2d_backward_cuda(dout, x, w, 2, "same")
    for got, ref in zip((out, dx, dw), _reference(x, w, 2, "same", dout)):
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_device_entry_points_keep_data_on_gpu():
    cuda = dc.cuda
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    x_d, w_d = cuda.to_device(x), cuda.to_device(w)
    out_d = dc.depthwise_conv2d_forward_device(x_d, w_d)
    dx_d, dw_d = dc.depthwise_conv2d_backward_device(out_d, x_d, w_d)  # dout = out, on device
    assert not isinstance(out_d, np.ndarray) and not isinstance(dx_d, np.ndarray)
    ref_out, ref_dx, ref_dw = _reference(x, w, 1, "symmetric", out_d.copy_to_host())
    np.testing.assert_allclose(out_d.copy_to_host(), ref_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx_d.copy_to_host(), ref_dx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw_d.copy_to_host(), ref_dw, rtol=1e-5, atol=1e-5)


def test_bad_input_names_op():
    x, w = np.ones((1, 2, 4, 4), np.float32), np.ones((2, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="depthwise_conv2d_forward_cuda: w must have shape"):
        dc.depthwise_conv2d_forward_cuda(x, np.ones((3, 1, 3, 3), np.float32))
    with pytest.raises(ValueError, match="depthwise_conv2d_forward_cuda: arrays must share"):
        dc.depthwise_conv2d_forward_cuda(x, w.astype(np.float64))
    with pytest.raises(ValueError, match="depthwise_conv2d_forward_device: unknown method"):
        dc.depthwise_conv2d_forward_cuda(x, w, method="fast")
    with pytest.raises(ValueError, match="depthwise_conv2d_forward_device: x is a NumPy array"):
        dc.depthwise_conv2d_forward_device(x, dc.cuda.to_device(w))
    with pytest.raises(ValueError, match=r"depthwise_conv2d_backward_device: dout must have "
                                         r"shape \(1, 2, 2, 2\)"):
        dc.depthwise_conv2d_backward_cuda(np.ones((1, 2, 4, 4), np.float32), x, w, 2)


def test_without_gpu_raises_clear_error(monkeypatch):
    monkeypatch.setattr(dc.cuda, "is_available", lambda: False)
    x, w = np.ones((1, 1, 3, 3), np.float32), np.ones((1, 1, 3, 3), np.float32)
    with pytest.raises(RuntimeError, match="depthwise_conv2d_forward_cuda: no CUDA GPU"):
        dc.depthwise_conv2d_forward_cuda(x, w)
