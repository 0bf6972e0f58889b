"""EfficientNet as a whole: structure, counts, train/eval modes, state dicts, full backward."""
import numpy as np
import pytest

import minieffnet as me
from minieffnet.model import EfficientNet
from minieffnet.scaling import LAYER_KINDS, count_parameters, make_config, network_layers


def tiny(dtype=np.float64, **kw):
    """A 7-block network small enough to gradient-check end to end (channels floor at 8)."""
    options = dict(width=0.1, depth=0.1, dropout=0.0, drop_connect=0.0)
    options.update(kw)
    config = make_config("b0", num_classes=5, preset="cifar", resolution=8, **options)
    return EfficientNet(config, seed=3, dtype=dtype)


def test_parameter_count_of_built_model_matches_analytic_count():
    for variant in ("b0", "b2"):
        model = me.efficientnet(variant, num_classes=1000)
        built = sum(p.data.size for p in model.parameters())
        assert built == count_parameters(model) == count_parameters(model.config)
    assert sum(p.data.size for p in me.efficientnet("b0").parameters()) == 5_288_548


def test_every_layer_spec_is_a_built_module_with_its_parameters():
    """network_layers describes exactly the modules the model holds: each path is a module
    with ``params`` parameters, and together they hold every parameter; every kind of layer
    is among them."""
    model = tiny(np.float32)
    modules = dict(model.named_modules())
    layers = network_layers(model)
    assert {p.layer.kind for p in layers} == set(LAYER_KINDS)
    for placed in layers:
        built = sum(p.data.size for p in modules[placed.path].parameters())
        assert built == placed.layer.params, placed.path
    assert sum(p.layer.params for p in layers) == sum(p.data.size for p in model.parameters())
    residual = [p.path.split(".")[1] for p in layers if p.layer.kind == "drop_connect"]
    assert residual == [str(i) for i, b in enumerate(model.blocks) if b.use_residual]


def test_features_and_classify_are_the_two_halves_of_forward(rng):
    model = tiny(np.float32).eval()
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    features = model.features(x)
    head = network_layers(model.config, 8)[-4]  # head conv, then pool, dropout, classifier
    assert head.path == "head"
    assert features.shape == (2, model.config.head_channels, *head.out_size)
    np.testing.assert_array_equal(model.classify(features), model(x))
    with pytest.raises(ValueError, match="dtype float64 but the model is float32"):
        model.features(x.astype(np.float64))


def test_forward_shape_dtype_and_input_errors(rng):
    model = tiny(np.float32)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    out = model(x)
    assert out.shape == (2, 5) and out.dtype == np.float32
    with pytest.raises(ValueError, match="EfficientNet.*4 dimensions"):
        model(x[0])
    with pytest.raises(ValueError, match=r"EfficientNet: x must be \(N, 3, H, W\)"):
        model(np.zeros((2, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="dtype float64 but the model is float32"):
        model(x.astype(np.float64))
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model(bad)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_full_backward_matches_finite_differences(mode, rng):
    """Train mode (batch statistics) and eval mode (running statistics, the fused depthwise
    stage), dropout and stochastic depth off; float64 throughout."""
    model = tiny().train(mode == "train")
    x = rng.standard_normal((3, 3, 8, 8))
    dout = rng.standard_normal((3, 5))
    model.zero_grad()
    model(x)
    dx = model.backward(dout)

    def loss():
        return float(np.sum(model(x) * dout))

    def numeric(array, index, h=1e-6):
        old = array[index]
        array[index] = old + h
        plus = loss()
        array[index] = old - h
        minus = loss()
        array[index] = old
        return (plus - minus) / (2 * h)

    pairs = []  # (name, index, analytic, numeric) for 3 random elements of every tensor
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.data.shape, name
        for flat in rng.choice(p.data.size, size=min(3, p.data.size), replace=False):
            i = np.unravel_index(flat, p.data.shape)
            pairs.append((name, i, p.grad[i], numeric(p.data, i)))
    for flat in rng.choice(x.size, size=12, replace=False):
        i = np.unravel_index(flat, x.shape)
        pairs.append(("x", i, dx[i], numeric(x, i)))
    # Relative error per element, with an absolute floor at 1e-6 of the largest gradient:
    # some gradients are exactly zero (a BN bias followed by another BN), where centred
    # differences through the whole network only give noise of order 1e-7.
    scale = max(abs(a) for _, _, a, _ in pairs)
    for name, i, a, n in pairs:
        assert abs(a - n) <= 1e-6 * max(abs(a) + abs(n), scale), (name, i, a, n)
    assert len(pairs) > 100


def test_full_backward_catches_a_wrong_layer(rng, monkeypatch):
    """The same end-to-end check fails if one layer's backward is wrong."""
    model = tiny().train()
    x = rng.standard_normal((2, 3, 8, 8))
    dout = rng.standard_normal((2, 5))
    se = model.blocks[0].se
    original = se.backward
    monkeypatch.setattr(se, "backward", lambda d: original(d) * 1.01)
    model(x)
    model.backward(dout)
    w = model.stem[0].weight
    old = w.data[0, 0, 0, 0]
    w.data[0, 0, 0, 0] = old + 1e-6
    plus = np.sum(model(x) * dout)
    w.data[0, 0, 0, 0] = old - 1e-6
    minus = np.sum(model(x) * dout)
    w.data[0, 0, 0, 0] = old
    n = (plus - minus) / 2e-6
    assert abs(w.grad[0, 0, 0, 0] - n) > 1e-6 * abs(n)


def test_train_and_eval_modes(rng):
    model = tiny(np.float32, dropout=0.5, drop_connect=0.5)
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    bn = model.stem[1]
    before = bn.running_mean.copy()
    model.eval()
    a, b = model(x), model(x)
    np.testing.assert_array_equal(a, b)  # eval: deterministic, no dropout / stochastic depth
    np.testing.assert_array_equal(bn.running_mean, before)  # eval: statistics untouched
    model.train()
    c, d = model(x), model(x)
    assert not np.array_equal(c, d)  # train: fresh dropout / drop-connect masks each call
    assert not np.array_equal(bn.running_mean, before)  # train: statistics updated
    # The same seed gives the same masks.
    m1, m2 = tiny(np.float32, dropout=0.5, drop_connect=0.5), tiny(np.float32, dropout=0.5, drop_connect=0.5)
    np.testing.assert_array_equal(m1(x), m2(x))
    assert [b.drop_connect.p for b in model.blocks if b.use_residual] == \
        [s.drop_connect_rate for s in model.config.blocks if s.has_residual]


def test_state_dict_round_trip_and_errors(rng):
    a, b = tiny(np.float32), EfficientNet(tiny().config, seed=99, dtype=np.float32)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    a.train()(x)  # move running statistics away from their initial values
    state = a.state_dict()
    assert "stem.1.running_mean" in state and "classifier.weight" in state
    b.load_state_dict(state)
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x), b(x))
    with pytest.raises(ValueError, match="missing keys.*classifier.bias"):
        b.load_state_dict({k: v for k, v in state.items() if k != "classifier.bias"})
    with pytest.raises(ValueError, match="unexpected keys.*extra"):
        b.load_state_dict({**state, "extra": np.zeros(1)})
    wrong = dict(state, **{"classifier.weight": np.zeros((3, 3), np.float32)})
    with pytest.raises(ValueError, match="classifier.weight has shape"):
        b.load_state_dict(wrong)
