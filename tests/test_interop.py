"""torchvision <-> minieffnet weights (minieffnet.interop), cross-checked against torchvision.

torchvision's models get random (seeded) weights and randomised BatchNorm statistics, so that
a wrong mapping, eps or momentum cannot hide behind PyTorch's all-ones / all-zeros defaults.
Inputs are 32-64 px and batch 2 to keep the file fast; B5 stands for B5..B7 (TF's BatchNorm
eps and momentum).
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from minieffnet.interop import from_torchvision, to_torchvision, torchvision_names  # noqa: E402
from minieffnet.model import efficientnet  # noqa: E402
from minieffnet.nn.layers import BatchNorm2d  # noqa: E402
from minieffnet.scaling import make_config  # noqa: E402

pytestmark = pytest.mark.torch


def torchvision_model(variant, seed=0, **kwargs):
    """torchvision's efficientnet_<variant> with random weights and BatchNorm statistics."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, f"efficientnet_{variant}")(**kwargs)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None:
                m.bias.normal_(0, 0.1)  # SE and classifier biases start at zero otherwise
    return model


def numpy_state(model):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def max_rel(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)


@pytest.fixture(scope="module")
def b0_state():
    return numpy_state(torchvision_model("b0"))


# --- eval-mode outputs, float32 --------------------------------------------------------------
@pytest.mark.parametrize("variant,size", [("b0", 64), ("b1", 64), ("b5", 32)])
def test_eval_logits_match_torchvision(variant, size, rng):
    tv = torchvision_model(variant).eval()
    model = from_torchvision(numpy_state(tv)).eval()  # variant inferred
    assert model.config == make_config(variant)
    x = rng.standard_normal((2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        expected = tv(torch.from_numpy(x)).numpy()
    logits = model(x)
    assert logits.dtype == np.float32
    assert max_rel(logits, expected) < 1e-4


@pytest.mark.parametrize("variant", ["b0", "b5"])
def test_bn_eps_momentum_dropout_and_stochastic_depth_follow_torchvision(variant):
    tv = torchvision_model(variant)
    model = from_torchvision(numpy_state(tv))
    modules = dict(tv.named_modules())
    names = torchvision_names(model)
    bns = [(n, m) for n, m in model.named_modules() if isinstance(m, BatchNorm2d)]
    assert len(bns) == sum(isinstance(m, torch.nn.BatchNorm2d) for m in modules.values())
    for name, bn in bns:
        ref = modules[names[f"{name}.weight"].removesuffix(".weight")]
        assert isinstance(ref, torch.nn.BatchNorm2d), name
        assert (bn.eps, bn.momentum) == (ref.eps, ref.momentum), name
    stem_bn = bns[0][1]
    assert (stem_bn.eps, stem_bn.momentum) == ((1e-3, 0.01) if variant == "b5" else (1e-5, 0.1))
    assert model.dropout.p == tv.classifier[0].p
    tv_blocks = [m for stage in tv.features[1:-1] for m in stage]
    assert [b.use_residual for b in model.blocks] == [m.use_res_connect for m in tv_blocks]
    assert ([s.drop_connect_rate for s in model.config.blocks]
            == [m.stochastic_depth.p for m in tv_blocks])
    for block, spec in zip(model.blocks, model.config.blocks):
        if block.use_residual:
            assert block.drop_connect.p == spec.drop_connect_rate


# --- train mode, float64: activations, running statistics and every gradient ----------------
def test_train_mode_gradients_and_running_stats_match_torchvision(rng):
    """Dropout and stochastic depth off on both sides (p=0), so the computation is fixed."""
    tv = torchvision_model("b0", dropout=0.0, stochastic_depth_prob=0.0).double().train()
    model = from_torchvision(numpy_state(tv), dtype=np.float64, dropout=0.0,
                             drop_connect=0.0).train()
    x = rng.standard_normal((2, 3, 64, 64))
    dlogits = rng.standard_normal((2, 1000))  # a random upstream gradient

    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    out = tv(xt)
    out.backward(torch.from_numpy(dlogits))
    logits = model(x)
    model.zero_grad()
    dx = model.backward(dlogits)

    assert max_rel(logits, out.detach().numpy()) < 1e-10
    assert max_rel(dx, xt.grad.numpy()) < 1e-8
    tv_params = dict(tv.named_parameters())
    names = torchvision_names(model)
    grads = {n: (p.grad, tv_params[names[n]].grad.numpy().reshape(p.grad.shape))
             for n, p in model.named_parameters()}
    # Gradients that are zero in exact arithmetic (a bias feeding straight into a train-mode
    # BatchNorm) are rounding noise on both sides: compare against the overall scale there.
    scale = max(np.abs(ref).max() for _, ref in grads.values())
    for name, (ours, ref) in grads.items():
        assert np.abs(ours - ref).max() <= 1e-8 * max(np.abs(ref).max(), 1e-6 * scale), name
    assert len(grads) == len(tv_params)
    # The momentum update of the running statistics (unbiased variance) matches too.
    exported = to_torchvision(model)
    for key, value in tv.state_dict().items():
        if "running" in key:
            assert max_rel(exported[key], value.numpy()) < 1e-10, key


# --- round trips -----------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["b0", "b5"])
def test_round_trip_is_exact_and_loads_strictly_into_torchvision(variant):
    tv = torchvision_model(variant)
    state = numpy_state(tv)
    back = to_torchvision(from_torchvision(state, variant))
    kept = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert back.keys() == kept.keys()
    for k, v in kept.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v), k
    fresh = getattr(torchvision.models, f"efficientnet_{variant}")()
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()})  # strict


def test_name_mapping_follows_the_expansion_shift():
    model = efficientnet("b0")
    names = torchvision_names(model)
    # Block 0 (MBConv1) has no expansion: depthwise is block.0, SE block.1, project block.2.
    assert names["blocks.0.depthwise.0.weight"] == "features.1.0.block.0.0.weight"
    assert names["blocks.0.se.reduce_weight"] == "features.1.0.block.1.fc1.weight"
    assert names["blocks.0.project.1.running_var"] == "features.1.0.block.2.1.running_var"
    # Block 2 is the second block of stage 2 (MBConv6): expand is block.0, project block.3.
    assert names["blocks.2.expand.0.weight"] == "features.2.1.block.0.0.weight"
    assert names["blocks.2.se.expand_bias"] == "features.2.1.block.2.fc2.bias"
    assert names["blocks.2.project.0.weight"] == "features.2.1.block.3.0.weight"
    assert names["head.1.bias"] == "features.8.1.bias"
    assert names["classifier.weight"] == "classifier.1.weight"
    assert len(set(names.values())) == len(names)


def test_float64_conversion_and_new_classifier(b0_state):
    model = from_torchvision(b0_state, dtype=np.float64)
    assert all(p.data.dtype == np.float64 for p in model.parameters())
    # A different num_classes keeps every feature weight and starts a fresh classifier.
    tuned = from_torchvision(b0_state, num_classes=10)
    assert tuned.classifier.weight.shape == (10, 1280)
    exported = to_torchvision(tuned)
    for key, value in exported.items():
        if not key.startswith("classifier."):
            assert np.array_equal(value, b0_state[key]), key


# --- errors ----------------------------------------------------------------------------------
def test_missing_extra_and_misshaped_keys_are_named(b0_state):
    missing = dict(b0_state)
    del missing["features.3.1.block.2.fc1.bias"]
    with pytest.raises(ValueError, match=r"missing keys \['features\.3\.1\.block\.2\.fc1\.bias"):
        from_torchvision(missing)

    extra = dict(b0_state, **{"features.3.1.block.9.weight": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match=r"unexpected keys \['features\.3\.1\.block\.9\."):
        from_torchvision(extra)

    bad = dict(b0_state)
    bad["features.2.0.block.1.0.weight"] = bad["features.2.0.block.1.0.weight"][:, :, :2]
    with pytest.raises(ValueError, match=r"features\.2\.0\.block\.1\.0\.weight has shape "
                                         r"\(96, 1, 2, 3\), expected \(96, 1, 3, 3\)"):
        from_torchvision(bad)

    with pytest.raises(ValueError, match="missing key classifier.1.weight"):
        from_torchvision({k: v for k, v in b0_state.items() if not k.startswith("classifier")})


def test_variant_inference_and_explicit_mismatch(b0_state):
    # Dropping a whole block leaves a network that is no B0..B7: ask for the variant.
    pruned = {k: v for k, v in b0_state.items() if not k.startswith("features.6.3.")}
    with pytest.raises(ValueError, match=r"15 blocks.*none of b0\.\.b7.*pass variant="):
        from_torchvision(pruned)
    # B0's weights declared as B1: B1 has blocks B0 lacks.
    with pytest.raises(ValueError, match=r"efficientnet_b1 state dict: missing keys \['features"):
        from_torchvision(b0_state, "b1")


def test_to_torchvision_strict_refuses_networks_torchvision_does_not_build():
    cifar = efficientnet("b0", num_classes=10, preset="cifar", width=0.5, depth=0.5)
    with pytest.raises(ValueError, match="width 0.5 and depth 0.5 match no variant"):
        to_torchvision(cifar)
    with pytest.raises(ValueError, match="stem_stride 1 vs 2"):
        to_torchvision(efficientnet("b0", preset="cifar"))
    with pytest.raises(ValueError, match="padding 'same' vs 'symmetric'"):
        to_torchvision(efficientnet("b0", padding="same"))
    # Dropout rates and the nominal resolution are not part of the network.
    to_torchvision(efficientnet("b0", dropout=0.5, drop_connect=0.1, resolution=64))
    relaxed = to_torchvision(efficientnet("b0", preset="cifar"), strict=False)
    assert relaxed.keys() == to_torchvision(efficientnet("b0")).keys()
