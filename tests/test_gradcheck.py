"""The gradient checker itself: it must pass a right backward and catch a wrong one."""
import numpy as np

from minieffnet import check_gradients, rel_error
from minieffnet.ops import swish_backward, swish_forward


def test_catches_wrong_backward(rng):
    x = rng.standard_normal((3, 4))

    def wrong_backward(dout, cache):  # forgets the x * s * (1 - s) term of swish'
        s = 1 / (1 + np.exp(-cache))
        return dout * s

    err = check_gradients(swish_forward, wrong_backward, {"x": x})["x"].error
    assert err > 1e-2


def test_catches_backward_that_only_passes_a_constant_upstream(rng):
    # A "BatchNorm" backward returning zeros is right for dout = const, wrong for random dout.
    def normalize(x):
        m, s = x.mean(), x.std()
        return (x - m) / s, x

    res = check_gradients(normalize, lambda dout, cache: np.zeros_like(cache), {"x": rng.standard_normal(6)})
    assert res["x"].error > 0.5


def test_passes_right_backward_and_reports_worst_element(rng):
    res = check_gradients(swish_forward, swish_backward, {"x": rng.standard_normal((3, 4))})["x"]
    assert res.error < 1e-8
    assert len(res.worst_index) == 2 and "rel.err" in str(res)


def test_rel_error_scale_invariant():
    a = np.array([1.0, 2.0, 3.0])
    assert rel_error(a, a) == 0
    assert np.isclose(rel_error(a, a + 0.01), rel_error(1e3 * a, 1e3 * (a + 0.01)))
