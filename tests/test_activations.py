import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from helpers import assert_close, assert_gradients, run_both
from minieffnet.ops import sigmoid_backward, sigmoid_forward, swish_backward, swish_forward


@pytest.mark.parametrize("fwd,bwd", [(sigmoid_forward, sigmoid_backward),
                                     (swish_forward, swish_backward)])
def test_gradient(fwd, bwd, rng):
    x = rng.standard_normal((2, 3, 4, 5)) * 3
    assert_gradients(fwd, bwd, {"x": x})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_inputs_do_not_overflow(dtype):
    x = np.array([-1e4, -100.0, -1.0, 0.0, 1.0, 100.0, 1e4], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any overflow / invalid warning fails the test
        for out in run_both(lambda: swish_forward(x)[0]) + run_both(lambda: sigmoid_forward(x)[0]):
            assert out.dtype == dtype and np.all(np.isfinite(out))
        (ref, fast) = run_both(lambda: swish_backward(np.ones_like(x), x))
    assert_close(ref, fast, dtype, "swish backward")
    # Known values: swish(-1e4) = 0, swish(1e4) = 1e4; swish'(0) = 1/2, swish'(+-1e4) = 1, 0.
    out = swish_forward(x)[0]
    assert out[0] == 0 and out[-1] == dtype(1e4)
    assert ref[3] == 0.5 and ref[-1] == 1 and ref[0] == 0


@settings(deadline=None, max_examples=25)
@given(st.sampled_from([np.float32, np.float64]),
       st.lists(st.integers(1, 6), min_size=1, max_size=4), st.booleans(), st.integers(0, 2**31))
def test_numba_matches_reference(dtype, shape, transpose, seed):
    x = (np.random.default_rng(seed).standard_normal(shape) * 5).astype(dtype)
    if transpose:  # non-contiguous input
        x = x.T
    dout = np.random.default_rng(seed + 1).standard_normal(x.shape).astype(dtype)
    for fwd, bwd in [(sigmoid_forward, sigmoid_backward), (swish_forward, swish_backward)]:
        (ref, cr), (fast, cf) = run_both(fwd, x)
        assert_close(ref, fast, dtype, fwd.__name__)
        ref_dx, fast_dx = run_both(bwd, dout, cr)
        assert_close(ref_dx, fast_dx, dtype, bwd.__name__)


@pytest.mark.parametrize("bad,msg", [(np.ones(3, dtype=np.int64), "float32 or float64"),
                                     ([1.0, 2.0], "numpy.ndarray")])
def test_bad_input_names_op(bad, msg):
    with pytest.raises(ValueError, match=f"swish_forward.*{msg}"):
        swish_forward(bad)


def test_backward_shape_mismatch():
    _, cache = swish_forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="swish_backward: dout must have shape"):
        swish_backward(np.ones((3, 2)), cache)


def test_fast_sigmoid_float32_accuracy_and_specials():
    from numba import njit
    from minieffnet.ops._fastmath import sigmoid

    @njit
    def sigmoid_all(x, out):
        for i in range(x.size):
            out[i] = sigmoid(x[i])

    x = np.linspace(-87.0, 20.0, 400_001, dtype=np.float32)
    out = np.empty_like(x)
    sigmoid_all(x, out)
    exact = 1 / (1 + np.exp(-x.astype(np.float64)))
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert out.dtype == np.float32 and np.max(np.abs(out - exact) / ulp) <= 4.0
    special = np.array([np.nan, -np.inf, np.inf, -1e4, -89.0, 1e4, 0.0], np.float32)
    out = np.empty_like(special)
    sigmoid_all(special, out)
    assert np.isnan(out[0]) and list(out[1:]) == [0, 1, 0, 0, 1, 0.5]
