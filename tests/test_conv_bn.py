"""The evaluation-mode fusion convolution -> BatchNorm -> swish, BatchNorm folded into the
convolution (ops/conv_bn.py)."""
import numpy as np
import pytest

from helpers import assert_fused_layer_matches_two_layers, assert_gradients, run_both
from minieffnet import use_backend
from minieffnet.nn.layers import BatchNorm2d, Conv2d, ConvBN
from minieffnet.ops import conv_bn
from minieffnet.ops import (NonFiniteError, batchnorm2d_forward, conv2d_forward,
                            conv_bn_eval_backward, conv_bn_eval_forward)


def _inputs(rng, N, C, O, H, k, dtype=np.float64):
    return {"x": rng.standard_normal((N, C, H, H)).astype(dtype),
            "w": rng.standard_normal((O, C, k, k)).astype(dtype),
            "gamma": rng.standard_normal(O).astype(dtype),
            "beta": rng.standard_normal(O).astype(dtype)}


def _running(rng, C, dtype=np.float64):
    return rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2.0, C).astype(dtype)


def _assert_sums_close(a, b, dtype, what, terms):
    """Agreement of outputs that are sums of ``terms`` products of unit-size numbers:
    folding rounds each w * s once, so their absolute error grows with ``terms`` (about an
    ulp of the sum of |w x|), while assert_close's float32 atol is fixed at 1e-5."""
    assert a.dtype == b.dtype == dtype, f"{what}: dtype {a.dtype}/{b.dtype}, expected {dtype}"
    rtol, eps = (1e-4, 1e-7) if dtype == np.float32 else (1e-10, 1e-15)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=4 * eps * terms, err_msg=what)


# Shapes cover the epilogue's two row layouts (per channel at >= 128 pixels, per sample
# below), several epilogue blocks per BLAS slice (4 x 96 x 32 x 32 floats), the folded
# product of a large weight on a tiny map (512 x 128 weights, 2 x 2 pixels), and the stem's
# im2col path (3 x 3, stride 2, both paddings).
SHAPES = [(3, 8, 12, 12, 1, 1), (4, 16, 96, 32, 1, 1), (5, 128, 512, 2, 1, 1),
          (2, 3, 10, 9, 3, 2), (2, 5, 7, 8, 3, 1)]


@pytest.mark.parametrize("threads", ["numba", "python pool"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N,C,O,H,k,stride", SHAPES)
@pytest.mark.parametrize("padding", ["symmetric", "same"])
@pytest.mark.parametrize("activation", ["swish", None])
def test_equals_conv_then_eval_batchnorm(threads, dtype, N, C, O, H, k, stride, padding,
                                         activation, rng, monkeypatch):
    # "numba": the products and their epilogue on Numba's threads; "python pool": the
    # fallback where NumPy's OpenBLAS has no cblas (_blas's threads, a Python epilogue).
    if threads == "python pool":
        monkeypatch.setattr(conv_bn, "gemm_address", lambda dtype: None)
    a = _inputs(rng, N, C, O, H, k, dtype)
    mean, var = _running(rng, O, dtype)
    kept = mean.copy(), var.copy()

    def fused():
        return conv_bn_eval_forward(a["x"], a["w"], a["gamma"], a["beta"], mean, var,
                                    stride=stride, padding=padding, eps=1e-3,
                                    activation=activation)[0]

    def two_ops():
        h, _ = conv2d_forward(a["x"], a["w"], None, stride, padding)
        return batchnorm2d_forward(h, a["gamma"], a["beta"], mean, var, training=False,
                                   eps=1e-3, activation=activation)[0]

    ref, fast = run_both(fused)
    terms = C * k * k
    _assert_sums_close(fast, ref, dtype, "numba vs numpy", terms)
    for backend, out in (("numpy", ref), ("numba", fast)):
        with use_backend(backend):
            _assert_sums_close(out, two_ops(), dtype, f"{backend}: fused vs two ops", terms)
    np.testing.assert_array_equal(mean, kept[0])  # evaluation: statistics only read
    np.testing.assert_array_equal(var, kept[1])


@pytest.mark.parametrize("k,stride", [(1, 1), (3, 2)])
@pytest.mark.parametrize("activation", ["swish", None])
def test_gradient(k, stride, activation, rng):
    inputs = _inputs(rng, 2, 3, 4, 6, k)
    mean, var = _running(rng, 4)

    def forward(x, w, gamma, beta):
        return conv_bn_eval_forward(x, w, gamma, beta, mean, var, stride=stride,
                                    padding="same", activation=activation)

    assert_gradients(forward, conv_bn_eval_backward, inputs)


@pytest.mark.parametrize("where", [(0, 0, 0, 0), (3, 15, 31, 31)])
def test_nan_in_any_block_and_bad_input_name_the_op(where, rng):
    a = _inputs(rng, 4, 16, 96, 32, 1, np.float32)  # several epilogue blocks
    mean, var = _running(rng, 96, np.float32)
    args = (a["w"], a["gamma"], a["beta"], mean, var)
    x = a["x"].copy()
    x[where] = np.nan
    for backend in ("numpy", "numba"):
        with use_backend(backend), pytest.raises(NonFiniteError, match="conv_bn_eval"):
            conv_bn_eval_forward(x, *args)
    with pytest.raises(ValueError, match="conv_bn_eval_forward: activation"):
        conv_bn_eval_forward(a["x"], *args, activation="relu")
    with pytest.raises(ValueError, match=r"gamma must have shape \(96,\)"):
        conv_bn_eval_forward(a["x"], a["w"], a["gamma"][:16], a["beta"], mean, var)
    with pytest.raises(ValueError, match="conv_bn_eval_forward: arrays must share"):
        conv_bn_eval_forward(a["x"].astype(np.float64), *args)


def test_layer_in_eval_equals_the_two_layers_forward_and_backward(rng):
    conv = Conv2d(5, 6, 3, 2, "same", rng=np.random.default_rng(1), dtype=np.float64)
    bn = BatchNorm2d(6, eps=1e-3, dtype=np.float64, activation="swish")
    bn.running_mean[:], bn.running_var[:] = _running(np.random.default_rng(2), 6)
    assert_fused_layer_matches_two_layers(ConvBN, conv, bn, rng.standard_normal((3, 5, 9, 9)),
                                          rng.standard_normal((3, 6, 5, 5)))
