"""The evaluation-mode fusion depthwise conv -> BatchNorm -> swish (ops/depthwise_bn.py)."""
import numpy as np
import pytest

from helpers import (assert_close, assert_fused_layer_matches_two_layers, assert_gradients,
                     run_both)
from minieffnet import use_backend
from minieffnet.nn.layers import BatchNorm2d, DepthwiseBN, DepthwiseConv2d
from minieffnet.ops import (NonFiniteError, batchnorm2d_forward, depthwise_bn_eval_backward,
                            depthwise_bn_eval_forward, depthwise_conv2d_forward)


def _inputs(rng, N, C, H, k, dtype=np.float64):
    return {"x": rng.standard_normal((N, C, H, H)).astype(dtype),
            "w": rng.standard_normal((C, 1, k, k)).astype(dtype),
            "gamma": rng.standard_normal(C).astype(dtype),
            "beta": rng.standard_normal(C).astype(dtype)}


def _running(rng, C, dtype=np.float64):
    return rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2.0, C).astype(dtype)


# Shapes cover both tile widths of the Numba kernel (16 lanes at >= 256 pixels, 64 below 64
# pixels) with a partial last channel block, and both strides and paddings.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N,C,H,k,stride", [(3, 20, 9, 3, 1), (2, 70, 4, 5, 2),
                                            (2, 9, 17, 3, 2), (4, 24, 16, 5, 1)])
@pytest.mark.parametrize("padding", ["symmetric", "same"])
@pytest.mark.parametrize("activation", ["swish", None])
def test_equals_depthwise_then_eval_batchnorm(dtype, N, C, H, k, stride, padding, activation,
                                              rng):
    a = _inputs(rng, N, C, H, k, dtype)
    mean, var = _running(rng, C, dtype)
    kept = mean.copy(), var.copy()

    def fused():
        return depthwise_bn_eval_forward(a["x"], a["w"], a["gamma"], a["beta"], mean, var,
                                         stride=stride, padding=padding, eps=1e-3,
                                         activation=activation)[0]

    def two_ops():
        h, _ = depthwise_conv2d_forward(a["x"], a["w"], stride, padding)
        return batchnorm2d_forward(h, a["gamma"], a["beta"], mean, var, training=False,
                                   eps=1e-3, activation=activation)[0]

    ref, fast = run_both(fused)
    assert_close(fast, ref, dtype, "numba vs numpy")
    for backend, out in (("numpy", ref), ("numba", fast)):
        with use_backend(backend):
            assert_close(out, two_ops(), dtype, f"{backend}: fused vs two ops")
    np.testing.assert_array_equal(mean, kept[0])  # evaluation: statistics only read
    np.testing.assert_array_equal(var, kept[1])


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("activation", ["swish", None])
def test_gradient(stride, activation, rng):
    inputs = _inputs(rng, 2, 3, 6, 3)
    mean, var = _running(rng, 3)

    def forward(x, w, gamma, beta):
        return depthwise_bn_eval_forward(x, w, gamma, beta, mean, var, stride=stride,
                                         padding="same", activation=activation)

    assert_gradients(forward, depthwise_bn_eval_backward, inputs)


def test_nan_and_bad_input_name_the_op(rng):
    a = _inputs(rng, 2, 4, 5, 3, np.float32)
    mean, var = _running(rng, 4, np.float32)
    args = (a["w"], a["gamma"], a["beta"], mean, var)
    x = a["x"].copy()
    x[1, 2, 3, 3] = np.nan
    for backend in ("numpy", "numba"):
        with use_backend(backend), pytest.raises(NonFiniteError, match="depthwise_bn_eval"):
            depthwise_bn_eval_forward(x, *args)
    with pytest.raises(ValueError, match="depthwise_bn_eval_forward: activation"):
        depthwise_bn_eval_forward(a["x"], *args, activation="relu")
    with pytest.raises(ValueError, match="gamma must have shape"):
        depthwise_bn_eval_forward(a["x"], a["w"], a["gamma"][:3], a["beta"], mean, var)
    with pytest.raises(ValueError, match="depthwise_bn_eval_forward: arrays must share"):
        depthwise_bn_eval_forward(a["x"].astype(np.float64), *args)


def test_layer_in_eval_equals_the_two_layers_forward_and_backward(rng):
    conv = DepthwiseConv2d(6, 5, 2, "same", rng=np.random.default_rng(1), dtype=np.float64)
    bn = BatchNorm2d(6, eps=1e-3, dtype=np.float64, activation="swish")
    bn.running_mean[:], bn.running_var[:] = _running(np.random.default_rng(2), 6)
    assert_fused_layer_matches_two_layers(DepthwiseBN, conv, bn, rng.standard_normal((3, 6, 9, 9)),
                                          rng.standard_normal((3, 6, 5, 5)))
