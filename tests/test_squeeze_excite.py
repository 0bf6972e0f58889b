import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from helpers import assert_close, assert_gradients, run_both
from minieffnet.ops.squeeze_excite import squeeze_excite_backward, squeeze_excite_forward

NAMES = ["x", "w1", "b1", "w2", "b2"]


def _inputs(rng, N, C, Cr, H, W, dtype=np.float64):
    shapes = [(N, C, H, W), (Cr, C), (Cr,), (C, Cr), (C,)]
    return {k: rng.standard_normal(s).astype(dtype) for k, s in zip(NAMES, shapes)}


@pytest.mark.parametrize("shape", [(2, 4, 3, 5), (3, 2, 1, 1)])
def test_gradient(shape, rng):
    N, C, H, W = shape
    assert_gradients(squeeze_excite_forward, squeeze_excite_backward,
                     _inputs(rng, N, C, max(1, C // 4), H, W), NAMES)


@settings(deadline=None, max_examples=25)
@given(st.sampled_from([np.float32, np.float64]), st.integers(1, 3), st.integers(1, 6),
       st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), st.booleans(),
       st.integers(0, 2**31))
def test_numba_matches_reference(dtype, N, C, Cr, H, W, transpose, seed):
    rng = np.random.default_rng(seed)
    args = _inputs(rng, N, C, Cr, H, W, dtype)
    if transpose:  # non-contiguous x
        args["x"] = np.ascontiguousarray(args["x"].transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    dout = rng.standard_normal((N, C, H, W)).astype(dtype)
    (ref, cr), (fast, cf) = run_both(squeeze_excite_forward, **args)
    assert_close(ref, fast, dtype, "forward")
    for name, a, b in zip(["dx"] + NAMES[1:], *run_both(squeeze_excite_backward, dout, cr)):
        assert_close(a, b, dtype, name)


@pytest.mark.torch
def test_matches_hand_built_torch_se(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    N, C, Cr, H, W = 2, 8, 2, 3, 4
    args = _inputs(rng, N, C, Cr, H, W)
    out, cache = squeeze_excite_forward(**args)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in args.items()}
    # torchvision's SqueezeExcitation: avgpool -> 1x1 conv -> SiLU -> 1x1 conv -> sigmoid -> mul
    s = F.adaptive_avg_pool2d(t["x"], 1)
    a = F.silu(F.conv2d(s, t["w1"].reshape(Cr, C, 1, 1), t["b1"]))
    g = torch.sigmoid(F.conv2d(a, t["w2"].reshape(C, Cr, 1, 1), t["b2"]))
    tout = t["x"] * g
    dout = rng.standard_normal(out.shape)
    tout.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-12, atol=1e-14)
    for name, ours in zip(NAMES, squeeze_excite_backward(dout, cache)):
        np.testing.assert_allclose(ours, t[name].grad.numpy(), rtol=1e-10, atol=1e-13,
                                   err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_follows_input(dtype, rng):
    args = _inputs(rng, 2, 4, 1, 3, 3, dtype)
    out, cache = squeeze_excite_forward(**args)
    assert out.dtype == dtype
    grads = squeeze_excite_backward(np.ones(out.shape), cache)  # float64 dout: cast
    assert all(g.dtype == dtype for g in grads)


def _replace(name, value):
    args = _inputs(np.random.default_rng(0), 2, 4, 2, 3, 3)
    args[name] = value
    return args


@pytest.mark.parametrize("args,msg", [
    (_replace("x", np.ones((2, 4, 3))), "x must have 4 dimensions"),
    (_replace("w1", np.ones(8)), "w1 must have 2 dimensions"),
    (_replace("w1", np.ones((2, 5))), r"w1 must have shape \(2, 4\)"),
    (_replace("b1", np.ones(3)), r"b1 must have shape \(2,\)"),
    (_replace("w2", np.ones((2, 4))), r"w2 must have shape \(4, 2\)"),
    (_replace("b2", np.ones(2)), r"b2 must have shape \(4,\)"),
    (_replace("b2", np.ones(4, dtype=np.float32)), "share one dtype"),
    (_replace("x", np.ones((2, 4, 3, 3), dtype=int)), "float32 or float64"),
])
def test_bad_input_names_op(args, msg):
    with pytest.raises(ValueError, match=f"squeeze_excite_forward: .*{msg}"):
        squeeze_excite_forward(**args)


def test_backward_shape_mismatch():
    _, cache = squeeze_excite_forward(**_inputs(np.random.default_rng(0), 2, 4, 2, 3, 3))
    with pytest.raises(ValueError, match="squeeze_excite_backward: dout must have shape"):
        squeeze_excite_backward(np.ones((2, 4, 3, 2)), cache)
