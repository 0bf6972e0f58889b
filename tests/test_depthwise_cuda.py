"""The numba.cuda depthwise kernels against the NumPy reference, and the "cuda" backend.

conftest.py sets NUMBA_ENABLE_CUDASIM=1 unless a real GPU is asked for, so these run in
Numba's simulator, which runs every GPU thread as a Python thread. To keep that fast *and*
to make tiny images span several tiles (so halos cross tile borders and the reduction has
several rounds), the module's tile edge and block size are shrunk for the simulator; the
kernels are written for any tile edge and any power-of-two block.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import assert_close
from minieffnet import backend, set_backend, use_backend
from minieffnet.nn import Sequential
from minieffnet.nn.layers import BatchNorm2d, DepthwiseBN, DepthwiseConv2d
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


def _on_device(x, w, stride, padding, dout, method):
    """Forward and backward through the device entry points: ``(out, dx, dw)`` on the host."""
    cuda = dc.cuda
    out, cache = dc.depthwise_conv2d_forward_device(cuda.to_device(x), cuda.to_device(w),
                                                    stride, padding, method)
    dx, dw = dc.depthwise_conv2d_backward_device(cuda.to_device(dout), cache)
    return out.copy_to_host(), dx.copy_to_host(), dw.copy_to_host()


def _under_cuda_backend(x, w, stride, padding, dout):
    """Forward and backward through the public op under the "cuda" backend."""
    with use_backend("cuda"):
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


def _case(N, C, H, W, k, stride):
    rng = np.random.default_rng(k * 100 + H * 10 + W)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((C, 1, k, k)).astype(np.float32)
    Ho, Wo = -(-H // stride), -(-W // stride)  # both paddings give ceil(H / stride) for odd k
    return x, w, rng.standard_normal((N, C, Ho, Wo)).astype(np.float32)


def _assert_matches(got, ref, what):
    for name, g, r in zip(("out", "dx", "dw"), got, ref):
        assert g.dtype == np.float32 and g.shape == r.shape, name
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5, err_msg=f"{what} {name}")


# The tiled kernels through the public op (the "cuda" backend runs them), the naive ones
# through the device entry points (the way to choose a method).
ROUTES = {"tiled": _under_cuda_backend,
          "naive": lambda *args: _on_device(*args, method="naive")}
assert set(ROUTES) == set(dc.METHODS)


@pytest.mark.parametrize("method", dc.METHODS)
@pytest.mark.parametrize("N,C,H,W,k,stride,padding", CASES)
def test_matches_reference(N, C, H, W, k, stride, padding, method):
    x, w, dout = _case(N, C, H, W, k, stride)
    _assert_matches(ROUTES[method](x, w, stride, padding, dout),
                    _reference(x, w, stride, padding, dout), method)


def test_cache_is_shared_across_backends(rng):
    # The cache is the same plain (x, w, stride, padding) under every backend.
    x = rng.standard_normal((1, 3, 5, 6))
    w = rng.standard_normal((3, 1, 3, 3))
    dout = rng.standard_normal((1, 3, 3, 3))
    ref = _reference(x, w, 2, "same", dout)
    for forward, backward in (("cuda", "numba"), ("numba", "cuda"), ("cuda", "numpy")):
        with use_backend(forward):
            out, cache = depthwise_conv2d_forward(x, w, 2, "same")
        with use_backend(backward):
            dx, dw = depthwise_conv2d_backward(dout, cache)
        for name, got, want in zip(("out", "dx", "dw"), (out, dx, dw), ref):
            assert_close(got, want, np.float64, f"{forward} -> {backward} {name}")


@pytest.mark.parametrize("training", [True, False])
def test_layers_without_cuda_kernels_run_numba_under_cuda(training, rng):
    # A depthwise stage, as in MBConv: under "cuda" the convolution runs on the GPU and
    # BatchNorm + swish (and, in evaluation, the fused op's forward) on Numba; all of it must
    # equal the NumPy reference, forward and backward.
    def stage():
        conv = DepthwiseConv2d(3, 3, 2, "same", rng=np.random.default_rng(1), dtype=np.float64)
        bn = BatchNorm2d(3, dtype=np.float64, activation="swish")
        return DepthwiseBN(conv, bn).train(training)

    x = rng.standard_normal((2, 3, 6, 5))
    dout = rng.standard_normal((2, 3, 3, 3))
    results = {}
    for name in ("numpy", "cuda"):
        layer = stage()
        with use_backend(name):
            out = layer(x)
            dx = layer.backward(dout)
        results[name] = [out, dx] + [p.grad for p in layer.parameters()]
    for got, want in zip(results["cuda"], results["numpy"]):
        assert_close(got, want, np.float64, "cuda vs numpy")


def test_production_block_sizes(monkeypatch):
    # One case with the real 16x16 tiles and 128-thread reduction (slow in the simulator).
    for name, value in PRODUCTION.items():
        monkeypatch.setattr(dc, name, value)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 1, 5, 6)).astype(np.float32)
    w = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)
    dout = rng.standard_normal((1, 1, 3, 3)).astype(np.float32)
    got = _under_cuda_backend(x, w, 2, "symmetric", dout)
    for g, ref in zip(got, _reference(x, w, 2, "symmetric", dout)):
        np.testing.assert_allclose(g, ref, rtol=1e-5, atol=1e-5)


def test_float64_and_large_kernel_fallback():
    # k = 9 exceeds the tiled kernels' shared arrays: "tiled" must fall back, not misindex.
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 1, 5, 4)), rng.standard_normal((1, 1, 9, 9))
    dout = rng.standard_normal((1, 1, 3, 2))
    for got, ref in zip(_under_cuda_backend(x, w, 2, "same", dout),
                        _reference(x, w, 2, "same", dout)):
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_device_entry_points_keep_data_on_gpu():
    cuda = dc.cuda
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    out_d, cache = dc.depthwise_conv2d_forward_device(cuda.to_device(x), cuda.to_device(w))
    dx_d, dw_d = dc.depthwise_conv2d_backward_device(out_d, cache)  # dout = out, on device
    assert not isinstance(out_d, np.ndarray) and not isinstance(dx_d, np.ndarray)
    assert not any(isinstance(a, np.ndarray) for a in cache[:2])
    ref_out, ref_dx, ref_dw = _reference(x, w, 1, "symmetric", out_d.copy_to_host())
    np.testing.assert_allclose(out_d.copy_to_host(), ref_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx_d.copy_to_host(), ref_dx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw_d.copy_to_host(), ref_dw, rtol=1e-5, atol=1e-5)


def test_bad_input_names_op():
    cuda = dc.cuda
    x, w = np.ones((1, 2, 4, 4), np.float32), np.ones((2, 1, 3, 3), np.float32)
    with use_backend("cuda"):
        with pytest.raises(ValueError, match="depthwise_conv2d_forward: w must have shape"):
            depthwise_conv2d_forward(x, np.ones((3, 1, 3, 3), np.float32))
        with pytest.raises(ValueError, match="depthwise_conv2d_forward: arrays must share"):
            depthwise_conv2d_forward(x, w.astype(np.float64))
    with pytest.raises(ValueError, match="depthwise_conv2d_forward_device: unknown method"):
        dc.depthwise_conv2d_forward_device(cuda.to_device(x), cuda.to_device(w), method="fast")
    with pytest.raises(ValueError, match="depthwise_conv2d_forward_device: x is a NumPy array"):
        dc.depthwise_conv2d_forward_device(x, cuda.to_device(w))
    _, cache = dc.depthwise_conv2d_forward_device(cuda.to_device(x), cuda.to_device(w), 2)
    with pytest.raises(ValueError, match=r"depthwise_conv2d_backward_device: dout must have "
                                         r"shape \(1, 2, 2, 2\)"):
        dc.depthwise_conv2d_backward_device(cuda.to_device(x), cache)


def test_without_gpu_raises_clear_error(monkeypatch):
    monkeypatch.setattr(dc.cuda, "is_available", lambda: False)
    x, w = np.ones((1, 1, 3, 3), np.float32), np.ones((1, 1, 3, 3), np.float32)
    with pytest.raises(RuntimeError, match=r"set_backend\('cuda'\): no CUDA GPU"):
        set_backend("cuda")
    assert backend.get_backend() == "numba"  # the failed selection changed nothing
    with pytest.raises(RuntimeError, match="depthwise_conv2d_forward_device: no CUDA GPU"):
        dc.depthwise_conv2d_forward_device(dc.cuda.to_device(x), dc.cuda.to_device(w))


def test_without_numba_cuda_names_the_package(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "numba_cuda" else find_spec(name, *a))
    with pytest.raises(RuntimeError, match="numba-cuda is not installed"):
        set_backend("cuda")


# Run in a fresh interpreter, without the simulator that conftest switched on for this one.
_SELECT_CUDA = """
import sys
{before}
import minieffnet
print("numba.cuda imported:", "numba.cuda" in sys.modules)
from numba import cuda
if cuda.is_available():
    print("a GPU is present")
else:
    try:
        minieffnet.set_backend("cuda")
    except RuntimeError as e:
        print("error:", e)
"""


def _select_cuda_in_subprocess(before: str = "") -> str:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run([sys.executable, "-c", _SELECT_CUDA.format(before=before)],
                            env=env, capture_output=True, text=True, timeout=120, check=True)
    if "a GPU is present" in result.stdout:
        pytest.skip("a CUDA GPU is present: selecting the backend succeeds")
    return result.stdout


def test_selecting_cuda_without_gpu_or_simulator_says_what_is_missing():
    out = _select_cuda_in_subprocess()
    # Importing minieffnet leaves numba.cuda alone (it takes ~0.2 s to import).
    assert "numba.cuda imported: False" in out
    assert "error: set_backend('cuda'): no CUDA GPU found" in out
    assert "set NUMBA_ENABLE_CUDASIM=1 before importing numba" in out


def test_simulator_switched_on_too_late_says_so():
    out = _select_cuda_in_subprocess(
        "import numba, os\nos.environ['NUMBA_ENABLE_CUDASIM'] = '1'")
    assert "NUMBA_ENABLE_CUDASIM=1 was set after numba was imported" in out
