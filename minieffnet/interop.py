"""Weights to and from torchvision's ``efficientnet_b0`` … ``efficientnet_b7``.

Both libraries store the same tensors in the same layouts (conv ``(O, C, k, k)``, depthwise
``(C, 1, k, k)``, linear ``(out, in)``), so converting is renaming plus one reshape: SE's two
fully connected layers are 1×1 convolutions in torchvision, ``(out, in, 1, 1)``, and plain
matrices here, ``(out, in)``. The names correspond module by module::

    minieffnet                       torchvision
    stem.{0,1}                       features.0.{0,1}                 conv, BN
    blocks.i.expand.{0,1}            features.{s+1}.{j}.block.0.{0,1} only if expand_ratio != 1
    blocks.i.depthwise.{0,1}         features.{s+1}.{j}.block.{e}.{0,1}
    blocks.i.se.reduce_{weight,bias} features.{s+1}.{j}.block.{e+1}.fc1.{weight,bias}
    blocks.i.se.expand_{weight,bias} features.{s+1}.{j}.block.{e+1}.fc2.{weight,bias}
    blocks.i.project.{0,1}           features.{s+1}.{j}.block.{e+2}.{0,1}
    head.{0,1}                       features.8.{0,1}
    classifier                       classifier.1                     (classifier.0 is dropout)

where block ``i`` is block ``j`` of stage ``s`` and ``e`` is 1 if the block has an expansion
conv, else 0 (torchvision's ``nn.Sequential`` numbers only the layers that exist). The table
is not written out per variant: :func:`torchvision_names` derives it from the model's own
parameter and buffer names and its config.

What else must agree for equal outputs, and does: symmetric ``(k-1)//2`` padding, BatchNorm
eps/momentum per variant (torchvision's ``efficientnet_b5``..``b7`` pass
``norm_layer=partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)``, B0..B4 use PyTorch's
defaults 1e-5 / 0.1), SE squeezing to ``max(1, block input channels // 4)``, stochastic depth
``0.2 * i / n_blocks`` per sample on residual blocks, dropout 0.2/0.2/0.3/0.3/0.4/0.4/0.5/0.5,
and the unbiased batch variance in the running-variance update.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Mapping

import numpy as np

from .checkpoint import config_differences
from .model import EfficientNet
from .scaling import B0_STAGES, COEFFICIENTS, EfficientNetConfig, block_layers, make_config

# SE parameters: minieffnet leaf name -> torchvision leaf name. These are also the only tensors
# whose layout differs (torchvision adds two trailing 1×1 axes to the weights).
_SE_LEAVES = {"reduce_weight": "fc1.weight", "reduce_bias": "fc1.bias",
              "expand_weight": "fc2.weight", "expand_bias": "fc2.bias"}
_SE_WEIGHTS = ("reduce_weight", "expand_weight")

# BatchNorm's batch counter: torchvision keeps it, minieffnet has no use for it (momentum is
# always set), and torch's BatchNorm fills it in when a state dict lacks it.
_IGNORED_SUFFIX = ".num_batches_tracked"

_HEAD_INDEX = len(B0_STAGES) + 1  # features.0 is the stem, features.1..7 the stages
_BLOCK_KEY = re.compile(r"features\.(\d+)\.(\d+)\.block\.")


def torchvision_names(model: EfficientNet) -> dict[str, str]:
    """``{minieffnet state_dict key: torchvision state_dict key}`` for every parameter and
    buffer of ``model`` (see the module docstring for the correspondence)."""
    prefixes = _module_prefixes(model.config)
    names = [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()]
    return {name: _translate(name, prefixes) for name in names}


def _module_prefixes(config: EfficientNetConfig) -> dict[str, str]:
    """minieffnet module path -> torchvision module path, for every module holding tensors."""
    prefixes = {"stem": "features.0", "head": f"features.{_HEAD_INDEX}",
                "classifier": "classifier.1"}
    i = 0
    for s, stage in enumerate(config.stages):
        for j, spec in enumerate(stage):
            # torchvision's block Sequential numbers only the layers that exist (so each index
            # shifts by one without an expansion conv) and keeps what holds no parameters
            # (stochastic depth) outside it.
            parts = [layer.name for layer in block_layers(spec) if layer.params]
            for k, part in enumerate(parts):
                prefixes[f"blocks.{i}.{part}"] = f"features.{s + 1}.{j}.block.{k}"
            i += 1
    return prefixes


def _translate(name: str, prefixes: dict[str, str]) -> str:
    """Rename one minieffnet key: the longest known module path, then the leaf."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in prefixes:
            leaf = ".".join(parts[cut:])
            return f"{prefixes[prefix]}.{_SE_LEAVES.get(leaf, leaf)}"
    # Only reachable if the model grows a module this table does not know about.
    raise RuntimeError(f"interop: no torchvision name for minieffnet's {name!r}")


def _torchvision_shape(name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape torchvision stores minieffnet's ``name`` in: SE weights gain (1, 1)."""
    return shape + (1, 1) if name.rsplit(".", 1)[-1] in _SE_WEIGHTS else shape


# --- torchvision -> minieffnet ---------------------------------------------------------------
def from_torchvision(state_dict: Mapping[str, np.ndarray], variant: str | None = None, *,
                     num_classes: int | None = None, dtype=np.float32,
                     dropout: float | None = None, drop_connect: float | None = None,
                     seed: int | np.random.Generator = 0) -> EfficientNet:
    """Build the minieffnet model equal to torchvision's ``efficientnet_{variant}`` with
    weights ``state_dict``.

    state_dict: torchvision's names -> arrays (``{k: v.numpy() for k, v in
    tv_model.state_dict().items()}``); ``num_batches_tracked`` entries are ignored.
    variant: "b0".."b7"; inferred when None from the stem width, the number of blocks and the
    head width (ValueError asking for ``variant=`` if that does not single one out).
    num_classes: inferred from ``classifier.1.weight`` when None. If given and different, the
    classifier is *not* loaded but freshly initialised (seeded by ``seed``), the usual start
    for fine-tuning pretrained features on a new task.
    dtype: the model's float dtype; the weights are cast to it.
    dropout, drop_connect: override the variant's rates (as torchvision's ``dropout`` and
    ``stochastic_depth_prob`` do); they do not affect evaluation.

    The result computes what the torchvision model computes (eval mode: the same logits; train
    mode: the same batch statistics, running-statistic updates and gradients). Raises
    ValueError naming any missing, unexpected or mis-shaped key.
    """
    state = {k: v for k, v in state_dict.items() if not k.endswith(_IGNORED_SUFFIX)}
    if variant is None:
        variant = _infer_variant(state)
    stored_classes = _stored_num_classes(state)
    if num_classes is None:
        num_classes = stored_classes
    config = make_config(variant, num_classes, dropout=dropout, drop_connect=drop_connect)
    model = EfficientNet(config, seed=seed, dtype=dtype)
    names = torchvision_names(model)
    if num_classes != stored_classes:
        # A new task: keep the fresh classifier, drop torchvision's.
        names = {me: tv for me, tv in names.items() if not me.startswith("classifier.")}
        state = {k: v for k, v in state.items() if not k.startswith("classifier.1.")}

    current = model.state_dict()
    where = f"torchvision efficientnet_{variant} state dict"
    missing = sorted(set(names.values()) - set(state))
    unexpected = sorted(set(state) - set(names.values()))
    if missing or unexpected:
        raise ValueError(f"{where}: missing keys {_some(missing)}, unexpected keys "
                         f"{_some(unexpected)}")
    for me, tv in names.items():
        value = np.asarray(state[tv])
        expected = _torchvision_shape(me, current[me].shape)
        if value.shape != expected:
            raise ValueError(f"{where}: {tv} has shape {value.shape}, expected {expected}")
        current[me] = value.reshape(current[me].shape).astype(dtype)
    model.load_state_dict(current)
    return model


def _some(keys: list[str], n: int = 8) -> str:
    return f"{keys[:n]}{' ...' if len(keys) > n else ''}"


def _stored_num_classes(state: Mapping[str, np.ndarray]) -> int:
    if "classifier.1.weight" not in state:
        raise ValueError("torchvision state dict: missing key classifier.1.weight "
                         "(the classifier, needed for num_classes)")
    return int(np.shape(state["classifier.1.weight"])[0])


def _infer_variant(state: Mapping[str, np.ndarray]) -> str:
    """The one variant whose stem width, block count and head width match ``state``."""
    stem_key, head_key = "features.0.0.weight", f"features.{_HEAD_INDEX}.0.weight"
    for key in (stem_key, head_key):
        if key not in state:
            raise ValueError(f"torchvision state dict: missing key {key}; is this an "
                             "efficientnet_b0..b7 state dict?")
    blocks = {m.groups() for k in state if (m := _BLOCK_KEY.match(k))}
    found = (np.shape(state[stem_key])[0], len(blocks), np.shape(state[head_key])[0])
    configs = {v: make_config(v) for v in COEFFICIENTS}
    matches = [v for v, c in configs.items()
               if (c.stem_channels, len(c.blocks), c.head_channels) == found]
    if len(matches) != 1:
        raise ValueError(f"cannot infer the variant of this torchvision state dict (stem "
                         f"{found[0]} channels, {found[1]} blocks, head {found[2]} channels): "
                         f"it matches {matches or 'none of b0..b7'}; pass variant='bN'")
    return matches[0]


# --- minieffnet -> torchvision ---------------------------------------------------------------
def to_torchvision(model: EfficientNet, *, strict: bool = True) -> dict[str, np.ndarray]:
    """``model``'s weights and BatchNorm statistics under torchvision's names and layouts.

    Load them with ``tv_model.load_state_dict({k: torch.from_numpy(v) for k, v in d.items()})``
    (torch fills in the absent ``num_batches_tracked``). Arrays are copies in the model's dtype.

    strict: require that the model *is* a torchvision ``efficientnet_bN`` (the released width
    and depth, ImageNet strides, symmetric padding, that variant's BatchNorm eps/momentum;
    dropout and stochastic depth may differ as torchvision's builders accept them), so that the
    torchvision model computes the same function; ValueError says what differs. With
    ``strict=False`` only the tensors must fit, e.g. to export a ``preset="cifar"`` model and
    change the strides on the torchvision side yourself.
    """
    if strict:
        problems = _torchvision_mismatch(model.config)
        if problems:
            raise ValueError(f"to_torchvision: model {model.config.name} is not a torchvision "
                             f"efficientnet_bN ({problems}); pass strict=False to export the "
                             "tensors anyway")
    state = model.state_dict()
    return {tv: state[me].reshape(_torchvision_shape(me, state[me].shape))
            for me, tv in torchvision_names(model).items()}


def _torchvision_mismatch(config: EfficientNetConfig) -> str:
    """'' if ``config`` is a torchvision variant (up to dropout rates), else what differs."""
    variants = [v for v, c in COEFFICIENTS.items()
                if (c.width, c.depth) == (config.width, config.depth)]
    if not variants:
        return f"width {config.width:g} and depth {config.depth:g} match no variant b0..b7"
    reference = make_config(variants[0], config.num_classes, dropout=config.dropout,
                            drop_connect=config.drop_connect)
    reference = dataclasses.replace(reference, name=config.name,
                                    resolution=config.resolution)
    return "; ".join(config_differences(config, reference))
