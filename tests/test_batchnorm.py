import numpy as np
import pytest
from hypothesis import assume, example, given, settings, strategies as st

from helpers import assert_close, assert_gradients, run_both
from minieffnet import check_gradients, use_backend
import minieffnet.ops._batchnorm_numba as batchnorm_numba
from minieffnet.ops.batchnorm import batchnorm2d_backward, batchnorm2d_forward

BACKENDS = ("numpy", "numba")
# The Numba path has channel-major kernels (large images) and sample-major ones (small
# images, below ROWS_BELOW_PIXELS pixels): these thresholds force one or the other.
KERNEL_LAYOUTS = {"channel-major": 0, "sample-major": 10**9}


@pytest.fixture(params=list(KERNEL_LAYOUTS))
def kernel_layout(request, monkeypatch):
    monkeypatch.setattr(batchnorm_numba, "ROWS_BELOW_PIXELS", KERNEL_LAYOUTS[request.param])
    return request.param


def make_params(rng, C, dtype=np.float64):
    """gamma, beta, running_mean, running_var with values away from the defaults (1, 0, 0, 1)."""
    gamma = rng.uniform(0.5, 2.0, C)
    beta = rng.standard_normal(C)
    running_mean = rng.standard_normal(C)
    running_var = rng.uniform(0.5, 2.0, C)
    return tuple(p.astype(dtype) for p in (gamma, beta, running_mean, running_var))


@pytest.mark.parametrize("training", [True, False])
def test_gradient(training, rng):
    x = rng.standard_normal((3, 2, 3, 2)) * 2 + 1
    gamma, beta, running_mean, running_var = make_params(rng, 2)

    def forward(x, gamma, beta):
        # Fresh running statistics per call: training mode updates them in place.
        return batchnorm2d_forward(x, gamma, beta, running_mean.copy(), running_var.copy(),
                                   training=training, eps=1e-3)

    assert_gradients(forward, batchnorm2d_backward, {"x": x, "gamma": gamma, "beta": beta})


def test_gradient_check_catches_eval_backward_in_training(rng):
    # The classic BatchNorm bug: treating the batch statistics as constants in training.
    x = rng.standard_normal((3, 2, 3, 2))
    gamma, beta, running_mean, running_var = make_params(rng, 2)

    def forward(x):
        return batchnorm2d_forward(x, gamma, beta, running_mean.copy(), running_var.copy())

    def wrong_backward(dout, cache):
        return batchnorm2d_backward(dout, cache._replace(training=False))[0]

    for name in BACKENDS:
        with use_backend(name):
            assert check_gradients(forward, wrong_backward, {"x": x})["x"].error > 1e-2


def forward_both(x, params, **kwargs):
    """Forward under each backend with its own copy of the running statistics.

    Returns ``[(out, cache, running_mean, running_var), ...]`` for numpy, then numba.
    """
    gamma, beta, running_mean, running_var = params
    results = []
    for name in BACKENDS:
        rm, rv = running_mean.copy(), running_var.copy()
        with use_backend(name):
            out, cache = batchnorm2d_forward(x, gamma, beta, rm, rv, **kwargs)
        results.append((out, cache, rm, rv))
    return results


@settings(deadline=None, max_examples=25)
@given(st.sampled_from([np.float32, np.float64]), st.integers(1, 4), st.integers(1, 4),
       st.integers(1, 5), st.integers(1, 5), st.sampled_from(["c", "transposed", "strided"]),
       st.booleans(), st.integers(0, 2**31))
@example(np.float32, 2, 3, 1, 1, "c", True, 0)  # H = W = 1: statistics over the batch only
@example(np.float64, 3, 1, 1, 1, "strided", True, 1)
def test_numba_matches_reference(dtype, N, C, H, W, layout, training, seed):
    for threshold in KERNEL_LAYOUTS.values():
        original = batchnorm_numba.ROWS_BELOW_PIXELS
        batchnorm_numba.ROWS_BELOW_PIXELS = threshold
        try:
            _check_numba_matches_reference(dtype, N, C, H, W, layout, training, seed)
        finally:
            batchnorm_numba.ROWS_BELOW_PIXELS = original


def _check_numba_matches_reference(dtype, N, C, H, W, layout, training, seed):
    assume(N * H * W > 1 or not training)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)) * rng.uniform(0.1, 10) + rng.uniform(-50, 50)
    if layout == "transposed":  # non-contiguous: NCHW view of an NHWC array
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    elif layout == "strided":  # non-contiguous: every other column of a wider array
        x = np.repeat(x, 2, axis=3)[..., ::2]
    x = x.astype(dtype)
    params = make_params(rng, C, dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)

    (out_r, cache_r, rm_r, rv_r), (out_f, cache_f, rm_f, rv_f) = forward_both(
        x, params, training=training, momentum=0.3)
    assert_close(out_r, out_f, dtype, "out")
    assert_close(rm_r, rm_f, dtype, "running_mean")
    assert_close(rv_r, rv_f, dtype, "running_var")
    # Every backward agrees with the reference backward of the reference cache, whichever
    # backend made the cache (caches are implementation-agnostic).
    expected = run_both(batchnorm2d_backward, dout, cache_r)[0]
    for cache in (cache_r, cache_f):
        for grads in run_both(batchnorm2d_backward, dout, cache):
            for what, a, b in zip(("dx", "dgamma", "dbeta"), expected, grads):
                assert_close(a, b, dtype, what)


@pytest.mark.torch
@pytest.mark.parametrize("training", [True, False])
def test_matches_torch(training, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((4, 3, 5, 2)) * 3 + 2
    gamma, beta, running_mean, running_var = make_params(rng, 3)
    dout = rng.standard_normal(x.shape)

    bn = torch.nn.BatchNorm2d(3, eps=1e-3, momentum=0.2, dtype=torch.float64)
    with torch.no_grad():
        for t, v in [(bn.weight, gamma), (bn.bias, beta), (bn.running_mean, running_mean),
                     (bn.running_var, running_var)]:
            t.copy_(torch.from_numpy(v))
    bn.train(training)
    xt = torch.tensor(x, requires_grad=True)
    out_t = bn(xt)
    out_t.backward(torch.from_numpy(dout))
    expected = {"out": out_t, "running_mean": bn.running_mean, "running_var": bn.running_var,
                "dx": xt.grad, "dgamma": bn.weight.grad, "dbeta": bn.bias.grad}

    for name, (out, cache, rm, rv) in zip(BACKENDS, forward_both(
            x, (gamma, beta, running_mean, running_var), training=training, momentum=0.2,
            eps=1e-3)):
        with use_backend(name):
            dx, dgamma, dbeta = batchnorm2d_backward(dout, cache)
        ours = {"out": out, "running_mean": rm, "running_var": rv, "dx": dx,
                "dgamma": dgamma, "dbeta": dbeta}
        for key, value in ours.items():
            np.testing.assert_allclose(value, expected[key].detach().numpy(), rtol=1e-10,
                                       atol=1e-12, err_msg=f"[{name}] {key}")


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_eval_uses_and_keeps_running_stats(backend_name, rng):
    x = rng.standard_normal((1, 3, 1, 1))  # a single value per channel is fine in eval
    gamma, beta, running_mean, running_var = make_params(rng, 3)
    rm, rv = running_mean.copy(), running_var.copy()
    with use_backend(backend_name):
        out, _ = batchnorm2d_forward(x, gamma, beta, rm, rv, training=False, eps=1e-3)
    np.testing.assert_array_equal(rm, running_mean)
    np.testing.assert_array_equal(rv, running_var)
    c = (1, 3, 1, 1)
    expected = (gamma.reshape(c) * (x - running_mean.reshape(c))
                / np.sqrt(running_var.reshape(c) + 1e-3) + beta.reshape(c))
    np.testing.assert_allclose(out, expected, rtol=1e-12)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_momentum_updates_running_stats_in_place(backend_name, rng):
    x = rng.standard_normal((2, 3, 2, 3)) * 2 + 5
    gamma, beta, running_mean, running_var = make_params(rng, 3)
    batch_mean = x.mean(axis=(0, 2, 3))
    batch_var_unbiased = x.var(axis=(0, 2, 3), ddof=1)  # m = 12
    with use_backend(backend_name):
        for momentum, keep in [(0.0, 1.0), (1.0, 0.0), (0.01, 0.99)]:
            rm, rv = running_mean.copy(), running_var.copy()
            batchnorm2d_forward(x, gamma, beta, rm, rv, momentum=momentum)
            # PyTorch's convention: momentum weights the *new* batch statistic, so PyTorch
            # 0.01 is the paper's / TF's 0.99 (the weight "keep" on the old value).
            np.testing.assert_allclose(rm, keep * running_mean + momentum * batch_mean,
                                       rtol=1e-12)
            np.testing.assert_allclose(rv, keep * running_var + momentum * batch_var_unbiased,
                                       rtol=1e-12)


@pytest.mark.parametrize("dtype,offset,rtol", [(np.float64, 1e8, 1e-6), (np.float32, 1e4, 1e-4)])
def test_large_mean_does_not_cancel(dtype, offset, rtol, kernel_layout, rng):
    # |mean| >> std: a naive one-pass E[x^2] - E[x]^2 loses the variance entirely here.
    x = (rng.standard_normal((4, 2, 3, 3)) + offset).astype(dtype)
    params = make_params(rng, 2, dtype)
    (out_r, _, _, rv_r), (out_f, _, _, rv_f) = forward_both(x, params, momentum=1.0)
    true_var = x.astype(np.float64).var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(rv_r, true_var, rtol=rtol)
    np.testing.assert_allclose(rv_f, true_var, rtol=rtol)
    np.testing.assert_allclose(out_f, out_r, rtol=rtol, atol=rtol)


def _valid_inputs(dtype=np.float64):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 2, 2)).astype(dtype)
    gamma, beta, running_mean, running_var = make_params(rng, 3, dtype)
    return dict(x=x, gamma=gamma, beta=beta, running_mean=running_mean,
                running_var=running_var)


BAD_INPUTS = [
    ("x", np.ones((2, 3, 4)), "x must have 4 dimensions"),
    ("x", np.ones((2, 3, 2, 2), dtype=np.int64), "x must be float32 or float64"),
    ("x", [[[[1.0]]]], "x must be a numpy.ndarray"),
    ("gamma", np.ones((3, 1)), "gamma must have 1 dimensions"),
    ("gamma", np.ones(3, dtype=np.float32), "must share one dtype"),
    ("running_var", np.ones(3, dtype=np.float16), "running_var must be float32 or float64"),
] + [(name, np.ones(4), rf"{name} must have shape \(3,\)")
     for name in ("gamma", "beta", "running_mean", "running_var")]


@pytest.mark.parametrize("name,value,msg", BAD_INPUTS)
def test_bad_input_names_op(name, value, msg):
    inputs = {**_valid_inputs(), name: value}
    with pytest.raises(ValueError, match=f"batchnorm2d_forward: .*{msg}"):
        batchnorm2d_forward(**inputs)


@pytest.mark.parametrize("shape", [(1, 3, 1, 1), (0, 3, 2, 2)])
def test_training_needs_two_values_per_channel(shape):
    inputs = {**_valid_inputs(), "x": np.ones(shape)}
    with pytest.raises(ValueError, match="batchnorm2d_forward: training needs more than one"):
        batchnorm2d_forward(**inputs, training=True)


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_input_raises_and_keeps_running_stats(backend_name, training, dtype, bad):
    inputs = _valid_inputs(dtype)
    inputs["x"][1, 2, 0, 1] = bad
    rm, rv = inputs["running_mean"].copy(), inputs["running_var"].copy()
    with use_backend(backend_name):
        with pytest.raises(ValueError, match="batchnorm2d_forward: input contains NaN or infinity"):
            batchnorm2d_forward(**inputs, training=training)
    np.testing.assert_array_equal(inputs["running_mean"], rm)
    np.testing.assert_array_equal(inputs["running_var"], rv)


def test_backward_shape_mismatch():
    _, cache = batchnorm2d_forward(**_valid_inputs())
    with pytest.raises(ValueError, match="batchnorm2d_backward: dout must have shape"):
        batchnorm2d_backward(np.ones((2, 3, 2, 1)), cache)


# --- fused BN -> swish ----------------------------------------------------------------------

@pytest.mark.parametrize("training", [True, False])
def test_fused_swish_gradient(training, rng):
    x = rng.standard_normal((3, 2, 3, 2)) * 2 + 1
    gamma, beta, running_mean, running_var = make_params(rng, 2)

    def forward(x, gamma, beta):
        return batchnorm2d_forward(x, gamma, beta, running_mean.copy(), running_var.copy(),
                                   training=training, eps=1e-3, activation="swish")

    assert_gradients(forward, batchnorm2d_backward, {"x": x, "gamma": gamma, "beta": beta})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("training", [True, False])
def test_fused_swish_equals_bn_then_swish(dtype, training, kernel_layout, rng):
    from minieffnet.ops import swish_backward, swish_forward
    x = (rng.standard_normal((4, 5, 6, 7)) * 3 + 2).astype(dtype)
    params = make_params(rng, 5, dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    for name in BACKENDS:
        with use_backend(name):
            gamma, beta, rm, rv = (p.copy() for p in params)
            y, bn_cache = batchnorm2d_forward(x, gamma, beta, rm, rv, training=training)
            out, act_cache = swish_forward(y)
            dx, dgamma, dbeta = batchnorm2d_backward(swish_backward(dout, act_cache), bn_cache)
            gamma, beta, rm2, rv2 = (p.copy() for p in params)
            fused, cache = batchnorm2d_forward(x, gamma, beta, rm2, rv2, training=training,
                                               activation="swish")
            assert_close(fused, out, dtype, f"{name} forward")
            np.testing.assert_array_equal(rm2, rm)
            for got, want, what in zip(batchnorm2d_backward(dout, cache), (dx, dgamma, dbeta),
                                       ("dx", "dgamma", "dbeta")):
                assert_close(got, want, dtype, f"{name} {what}")


def test_fused_swish_numba_matches_reference_with_large_mean(kernel_layout, rng):
    # The float32 kernel splits the mean into hi + lo; a wrong split shows up here.
    x = (rng.standard_normal((4, 3, 5, 5)) + 1e4).astype(np.float32)
    params = make_params(rng, 3, np.float32)
    (out_r, cache_r, _, _), (out_f, cache_f, _, _) = forward_both(x, params,
                                                                 activation="swish")
    np.testing.assert_allclose(out_f, out_r, rtol=1e-4, atol=1e-4)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    ref, fast = run_both(batchnorm2d_backward, dout, cache_r)
    for r, f in zip(ref, fast):
        np.testing.assert_allclose(f, r, rtol=1e-3, atol=1e-3)


def test_unknown_activation_is_rejected():
    with pytest.raises(ValueError, match="batchnorm2d_forward: activation must be one of"):
        batchnorm2d_forward(*_valid_inputs().values(), activation="relu")
