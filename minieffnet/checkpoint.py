"""Every on-disk format of minieffnet: model files and training checkpoints.

Both are one ``.npz`` file written by :func:`minieffnet.io.save_npz_atomic`: named arrays plus
JSON metadata. Nothing is pickled, so loading a file from an untrusted source cannot run code,
and the write is atomic, so a crash mid-save leaves the previous file intact.

A **model file** (:func:`save_model`, :func:`load_model`, :func:`load_weights`):

* one array per ``model.state_dict()`` entry, keyed by its dotted name
  (``blocks.3.se.reduce_weight``), in the model's dtype;
* metadata ``{"format": "minieffnet.model", "version": 1, "dtype": "float32",
  "config": config_to_dict(model.config), "rng_state": ..., "extra": extra_meta}``.

Because the file carries the configuration, :func:`load_model` rebuilds the network without
being told which it is.

A **training checkpoint** (``checkpoint.npz`` in a run folder; :func:`save_training_checkpoint`,
:func:`read_training_checkpoint`, :func:`training_state`) holds everything
:class:`minieffnet.train.Trainer` needs to continue a run bit for bit: a
:class:`~minieffnet.training_state.TrainingState` (the arrays, ``position``, ``epoch_totals``,
``elapsed_s``, ``rng``) and what describes the run (``train_config``, ``model_config``,
``dtype``, ``class_names``, ``normalization``):

* arrays ``model.<name>`` (the state dict, never NaN or infinite), ``optimizer.<name>`` (the
  optimiser's state) and, with an EMA, ``ema.<name>`` (``ema.shadow.<name>`` are the averaged
  weights used for evaluation);
* metadata ``{"format": "minieffnet.train", "version": 1, "train_config": TrainConfig as a
  dict, "model_config": ..., "dtype": ..., "class_names": [...], "normalization": {"mean",
  "std"}, "position": {"epoch", "batch", "step"}, "epoch_totals": {...}, "elapsed_s": ...,
  "rng": {"model": ..., "loader_epoch_start": ...}}``: the position is completed epochs,
  batches done in the current one and optimiser steps; the totals are the running sums of the
  epoch in progress; ``rng`` the bit-generator states of the model (dropout, stochastic depth)
  and of the training loader as it was when the epoch began;
* metadata ``"data"``, the fingerprint of the run's data (class names, image counts, the
  normalisation, digests of the arrays: :mod:`minieffnet.data_fingerprint`), which a resumed
  run must match. Checkpoints written before runs recorded it lack it; its reader (the
  :class:`~minieffnet.train.Trainer`) checks it, like ``train_config``.

Reading: a checkpoint may come from anywhere, so every reader goes through
:func:`read_checkpoint` (a ``.npz`` archive of real, finite arrays) and checks every metadata
field it uses before building anything, including whether the stored network fits in memory
(:func:`minieffnet.scaling.check_memory`), and that the weights are float32 or float64
(integers would load truncated, without a word). Whatever is wrong is a
:class:`~minieffnet.errors.BadFileError` naming the file and the field
(:func:`checkpoint_field`) or the array, never a KeyError or TypeError from deep inside. Its
strings (class names, the network's name) go through
:func:`~minieffnet.safe_text.printable` before they reach a terminal.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .errors import BadFileError, NonFiniteError
from .io import load_npz, save_npz_atomic
from .model import EfficientNet
from .safe_text import printable
from .scaling import BlockSpec, EfficientNetConfig, check_memory, count_parameters
from .training_state import TrainingState
from .validate import is_int, is_real

MODEL_FORMAT = "minieffnet.model"
MODEL_VERSION = 1
TRAINING_FORMAT = "minieffnet.train"
TRAINING_VERSION = 1
CHECKPOINT_FILE = "checkpoint.npz"  # a run folder's training checkpoint
DTYPES = ("float32", "float64")
# The metadata each kind of file must hold besides its format and version.
_MODEL_META = ("dtype", "config", "rng_state", "extra")
_TRAINING_META = ("train_config", "model_config", "dtype", "class_names", "normalization",
                  "position", "epoch_totals", "elapsed_s", "rng")
# A training checkpoint's arrays are the state dicts of these parts, each under its prefix.
_TRAINING_PARTS = ("model", "optimizer", "ema")
# The training checkpoint's arrays that are weights: the model's and the EMA's averages.
_WEIGHT_PREFIXES = ("model.", "ema.shadow.")

# Fields that describe how the network is regularised or labelled, not which function it
# computes: weights move freely between configs that differ only here (fine-tuning with another
# dropout, or evaluating at another resolution), so :func:`load_weights` ignores them.
_NON_ARCHITECTURE_FIELDS = ("name", "resolution", "dropout", "drop_connect")
_NON_ARCHITECTURE_BLOCK_FIELDS = ("drop_connect_rate",)

# Bit generators whose state a checkpoint may restore (numpy's own, looked up by state name).
_BIT_GENERATORS = {cls.__name__: cls for cls in (np.random.PCG64, np.random.PCG64DXSM,
                                                 np.random.MT19937, np.random.Philox,
                                                 np.random.SFC64)}


# --- configuration <-> JSON ------------------------------------------------------------------
def config_to_dict(config: EfficientNetConfig) -> dict[str, Any]:
    """The config as JSON-ready data: every dataclass field, ``blocks`` as a list of dicts."""
    d = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    d["blocks"] = [dataclasses.asdict(b) for b in config.blocks]
    return d


def config_from_dict(d: dict[str, Any]) -> EfficientNetConfig:
    """Rebuild an :class:`EfficientNetConfig` from :func:`config_to_dict`'s output.

    Raises ValueError naming any missing or unknown field (of the config or of a block), a
    value of the wrong type or range (:data:`_FIELD_RULES`), and whatever
    :class:`EfficientNetConfig` itself rejects (blocks that do not chain, ...).
    """
    check_fields("config", d, EfficientNetConfig)
    blocks = d["blocks"]
    if not isinstance(blocks, list) or not blocks:
        raise ValueError(f"config: blocks must be a non-empty list of dicts, got "
                         f"{type(blocks).__name__}")
    _check_values("config", d, EfficientNetConfig)
    specs = []
    for i, b in enumerate(blocks):
        check_fields(f"config block {i}", b, BlockSpec)
        _check_values(f"config block {i}", b, BlockSpec)
        specs.append(BlockSpec(**b))
    return EfficientNetConfig(**{**d, "blocks": tuple(specs)})


def check_fields(what: str, d: Any, cls: type) -> None:
    """Raise ValueError unless ``d`` is a dict with exactly the fields of dataclass ``cls``."""
    if not isinstance(d, dict):
        raise ValueError(f"{what} must be a dict, got {type(d).__name__}")
    expected = {f.name for f in dataclasses.fields(cls)}
    missing, unknown = sorted(expected - set(d)), sorted(set(d) - expected)
    if missing or unknown:
        raise ValueError(f"{what}: missing fields {missing}, unknown fields {unknown}")


# What a stored config's values must be, beyond their annotated type: every int field is a
# count >= 1 unless listed here, every float finite. A config read from a file is checked
# against this before a network is built from it, so a bad value is named instead of
# surfacing as a TypeError deep inside a layer.
_FIELD_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "stage": (lambda v: is_int(v) and v >= 0, "an integer >= 0"),
    "kernel": (lambda v: is_int(v) and v >= 1 and v % 2 == 1, "an odd positive integer"),
    "stride": (lambda v: is_int(v) and v in (1, 2), "1 or 2"),
    "stem_stride": (lambda v: is_int(v) and v in (1, 2), "1 or 2"),
    "width": (lambda v: is_real(v) and v > 0, "a positive number"),
    "depth": (lambda v: is_real(v) and v > 0, "a positive number"),
    "se_ratio": (lambda v: is_real(v) and v > 0, "a positive number"),
    "bn_eps": (lambda v: is_real(v) and v > 0, "a positive number"),
    "bn_momentum": (lambda v: is_real(v) and 0 < v <= 1, "in (0, 1]"),
    "dropout": (lambda v: is_real(v) and 0 <= v < 1, "in [0, 1)"),
    "drop_connect": (lambda v: is_real(v) and 0 <= v < 1, "in [0, 1)"),
    "drop_connect_rate": (lambda v: is_real(v) and 0 <= v < 1, "in [0, 1)"),
}
_TYPE_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "int": (lambda v: is_int(v) and v >= 1, "a positive integer"),
    "float": (is_real, "a finite number"),
    "str": (lambda v: isinstance(v, str), "a string"),
}


def _check_values(what: str, d: dict, cls: type) -> None:
    """Raise ValueError naming the first field of ``d`` (a dict of dataclass ``cls``'s
    fields) whose value breaks :data:`_FIELD_RULES` or its annotated type's rule."""
    for f in dataclasses.fields(cls):
        rule = _FIELD_RULES.get(f.name) or _TYPE_RULES.get(str(f.type))
        if rule is not None and not rule[0](d[f.name]):
            raise ValueError(f"{what}: {f.name} must be {rule[1]}, got {d[f.name]!r:.80}")


def config_differences(a: EfficientNetConfig, b: EfficientNetConfig, *,
                       ignore: tuple[str, ...] = (), ignore_block: tuple[str, ...] = ()
                       ) -> list[str]:
    """Human-readable differences between two configs, e.g. ``["depth 1.0 vs 1.1", ...]``.

    ``ignore`` / ``ignore_block`` name config / block fields to leave out. Blocks are compared
    one by one; the first differing block is described field by field.
    """
    diffs = [f"{f.name} {getattr(a, f.name)!r} vs {getattr(b, f.name)!r}"
             for f in dataclasses.fields(a)
             if f.name not in ignore and f.name != "blocks"
             and getattr(a, f.name) != getattr(b, f.name)]
    if len(a.blocks) != len(b.blocks):
        diffs.append(f"{len(a.blocks)} vs {len(b.blocks)} blocks")
        return diffs
    for i, (x, y) in enumerate(zip(a.blocks, b.blocks)):
        fields = [f"blocks[{i}].{f.name} {getattr(x, f.name)!r} vs {getattr(y, f.name)!r}"
                  for f in dataclasses.fields(x)
                  if f.name not in ignore_block and getattr(x, f.name) != getattr(y, f.name)]
        if fields:
            diffs.extend(fields)
            break
    return diffs


def _describe(config: EfficientNetConfig) -> str:
    return (f"{printable(config.name)} (width {config.width:g}, depth {config.depth:g}, "
            f"{len(config.blocks)} blocks, {config.num_classes} classes)")


# --- reading any checkpoint -------------------------------------------------------------------
@contextlib.contextmanager
def checkpoint_field(path: str | os.PathLike, field: str):
    """Turn any ValueError, TypeError or KeyError raised while reading metadata ``field`` of
    checkpoint ``path`` into a :class:`~minieffnet.errors.BadFileError` naming both.

    Stored metadata is untrusted input: whatever fails while interpreting it (a missing key,
    a list where a dict belongs, a size too large to build) means the file is bad. Callers
    that interpret fields of their own (``train_config``) read them inside this too.
    """
    try:
        yield
    except BadFileError:
        raise
    except (ValueError, TypeError, KeyError) as e:
        detail = f"missing key {e}" if isinstance(e, KeyError) else str(e)
        raise BadFileError(f"checkpoint {path}: metadata field {field!r} is invalid: "
                           f"{detail}") from e


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """``(arrays, meta)`` of any minieffnet checkpoint at ``path``, after checking that the
    file is one and that every array holds finite real numbers.

    A checkpoint is written only from finite weights (:func:`save_training_checkpoint`
    refuses others), so NaN or infinity means a damaged or foreign file: refused here, before
    it can print ``nan %`` or feed a run. Raises FileNotFoundError, or BadFileError naming the
    file and, for a bad array, the array.
    """
    arrays, meta = load_npz(path)
    if not isinstance(meta, dict):
        raise BadFileError(f"checkpoint {path} has metadata of type {type(meta).__name__}, "
                           "not a dict: not a minieffnet checkpoint")
    for name, value in arrays.items():
        if value.dtype.kind not in "biuf":
            raise BadFileError(f"checkpoint {path}: array {name!r} has dtype {value.dtype}, "
                               "not a real number type")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise BadFileError(f"checkpoint {path}: array {name!r} holds NaN or infinity "
                               "(the file is damaged, or not written by minieffnet)")
    return arrays, meta


def _check_weights(arrays: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Raise BadFileError naming ``path`` and the array unless every one of ``arrays`` (a
    network's weights and BatchNorm statistics, keyed as stored) is float32 or float64:
    :func:`read_checkpoint` admits integers (an optimiser's step counts), but weights stored
    as integers would be cast into the network, their fractions lost without a word."""
    for name, value in arrays.items():
        if value.dtype.name not in DTYPES:
            raise BadFileError(f"checkpoint {path}: array {name!r} has dtype {value.dtype}; "
                               "weights must be float32 or float64")


def _check_meta(meta: dict, path: str | os.PathLike, kind: str, expected_format: str,
                version: int, keys: Sequence[str]) -> None:
    """Raise BadFileError naming ``path`` unless ``meta`` is of ``expected_format``,
    ``version``, holding every one of ``keys``; ``kind`` says which file was expected."""
    found = meta.get("format")
    if found != expected_format:
        raise BadFileError(f"checkpoint {path} is not a minieffnet {kind} checkpoint "
                           f"(format {found!r:.80}, expected {expected_format!r})")
    if meta.get("version") != version:
        raise BadFileError(f"checkpoint {path} has format version {meta.get('version')!r:.80}; "
                           f"this minieffnet reads version {version}")
    missing = [k for k in keys if k not in meta]
    if missing:
        raise BadFileError(f"checkpoint {path} lacks metadata {missing}")


def _dtype(meta: dict, path: str | os.PathLike) -> np.dtype:
    if meta["dtype"] not in DTYPES:
        raise BadFileError(f"checkpoint {path} has dtype {meta['dtype']!r:.80}; expected "
                           "'float32' or 'float64'")
    return np.dtype(meta["dtype"])


def _stored_config(meta: dict, field: str, path: str | os.PathLike) -> EfficientNetConfig:
    """The config in metadata ``field``, checked, and refused if its network cannot fit."""
    with checkpoint_field(path, field):
        config = config_from_dict(meta[field])
        check_memory(f"the network it describes ({config.name})", count_parameters(config),
                     training=False)
    return config


def _load_arrays(model: EfficientNet, arrays: dict[str, np.ndarray],
                 path: str | os.PathLike) -> None:
    try:
        model.load_state_dict(arrays)
    except ValueError as e:
        raise BadFileError(f"checkpoint {path}: {e}") from e


def check_class_names(names: Any, num_classes: int, what: str) -> tuple[str, ...]:
    """``names`` as a tuple, if it is a list of ``num_classes`` strings; else ValueError
    naming ``what``."""
    if not (isinstance(names, (list, tuple)) and len(names) == num_classes
            and all(isinstance(n, str) for n in names)):
        raise ValueError(f"{what} must be a list of {num_classes} class names (strings), got "
                         f"{names!r:.80}")
    return tuple(names)


def check_statistics(mean: Any, std: Any, what: str
                     ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` as tuples, if each holds 3 finite numbers (std positive); else
    ValueError naming ``what``."""
    for name, value in (("mean", mean), ("std", std)):
        if not (isinstance(value, (list, tuple)) and len(value) == 3
                and all(is_real(v) for v in value)) or (name == "std" and min(value) <= 0):
            positive = " positive" if name == "std" else ""
            raise ValueError(f"{what} {name} must be 3 finite{positive} numbers (R, G, B), "
                             f"got {value!r:.80}")
    return tuple(map(float, mean)), tuple(map(float, std))


# --- model files ----------------------------------------------------------------------
def save_model(path: str | os.PathLike, model: EfficientNet,
               extra_meta: dict | None = None) -> Path:
    """Write ``model`` (weights, BatchNorm running statistics, config, dtype, RNG state) to
    ``path`` atomically, without pickle; returns the path.

    ``extra_meta`` is any JSON-serialisable dict (epoch, metrics, ...), returned by
    ``load_model(path, return_meta=True)``. The previous file at ``path``, if any, stays
    intact until the new one is complete.
    """
    meta = {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "dtype": model.dtype.name,
        "config": config_to_dict(model.config),
        # The Generator behind dropout and stochastic depth: restoring it makes a resumed run
        # draw the same masks as an uninterrupted one.
        "rng_state": model.rng.bit_generator.state,
        "extra": extra_meta if extra_meta is not None else {},
    }
    return save_npz_atomic(path, model.state_dict(), meta)


def load_model(path: str | os.PathLike, *, return_meta: bool = False
               ) -> EfficientNet | tuple[EfficientNet, dict]:
    """Rebuild the model saved by :func:`save_model` at ``path``.

    The network is built from the stored config in the stored dtype, then receives the stored
    weights, running statistics and RNG state; like a freshly built model it is in training
    mode (call ``.eval()`` for inference). With ``return_meta=True`` returns
    ``(model, extra_meta)``.

    Raises FileNotFoundError if ``path`` does not exist and BadFileError (a ValueError) naming
    the file, and the field or array, if it is truncated, corrupt, holds pickled objects, NaN
    or infinity, weights that are not float32 / float64, a malformed or oversized config, or
    is not a minieffnet model checkpoint.
    """
    arrays, meta = _read_model_file(path)
    model = EfficientNet(_stored_config(meta, "config", path), dtype=_dtype(meta, path))
    _restore(model, arrays, meta, path)
    return (model, meta["extra"]) if return_meta else model


def load_weights(model: EfficientNet, path: str | os.PathLike) -> EfficientNet:
    """Load the weights, running statistics and RNG state saved at ``path`` into ``model``.

    The stored network must be the model's: every config field must agree except the name,
    resolution and dropout / stochastic-depth rates (which change how a network is trained or
    fed, not its weights). Otherwise raises ValueError saying which fields differ, e.g.
    ``checkpoint ... holds b0 (width 1, depth 1, 16 blocks, ...) but the model is b1 (...)``.
    Values are cast to the model's dtype. Returns ``model``.
    """
    arrays, meta = _read_model_file(path)
    stored = _stored_config(meta, "config", path)
    diffs = config_differences(stored, model.config, ignore=_NON_ARCHITECTURE_FIELDS,
                               ignore_block=_NON_ARCHITECTURE_BLOCK_FIELDS)
    if diffs:
        raise ValueError(f"checkpoint {path} holds {_describe(stored)} but the model is "
                         f"{_describe(model.config)}; they differ in: {'; '.join(diffs)}")
    _restore(model, arrays, meta, path)
    return model


def _read_model_file(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays and metadata of a model file, after checking its format, version and keys."""
    arrays, meta = read_checkpoint(path)
    _check_meta(meta, path, "model", MODEL_FORMAT, MODEL_VERSION, _MODEL_META)
    _check_weights(arrays, path)  # a model file holds nothing else
    if not isinstance(meta["extra"], dict):
        raise BadFileError(f"checkpoint {path}: metadata field 'extra' must be a dict, got "
                           f"{type(meta['extra']).__name__}")
    return arrays, meta


def _restore(model: EfficientNet, arrays: dict[str, np.ndarray], meta: dict,
             path: str | os.PathLike) -> None:
    """Copy weights and RNG state into ``model``; all checks run before anything changes."""
    rng = _generator_from_state(meta["rng_state"], "rng_state", path)
    _load_arrays(model, arrays, path)
    model.rng = rng
    model.set_rng(rng)


def _generator_from_state(state: Any, field: str, path: str | os.PathLike
                          ) -> np.random.Generator:
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if not isinstance(name, str) or name not in _BIT_GENERATORS:
        raise BadFileError(f"checkpoint {path}: metadata field {field!r} is an unknown RNG "
                           f"state (bit generator {name!r:.80})")
    bit_generator = _BIT_GENERATORS[name]()
    with checkpoint_field(path, field):
        bit_generator.state = state
    return np.random.Generator(bit_generator)


# --- training checkpoints --------------------------------------------------------------------
def save_training_checkpoint(path: str | os.PathLike, state: TrainingState, *,
                             model_config: EfficientNetConfig, dtype: np.dtype | str,
                             train_config: dict[str, Any], class_names: Sequence[str],
                             mean: Sequence[float], std: Sequence[float],
                             data: dict[str, Any] | None = None) -> Path:
    """Write a training checkpoint (module docstring) of ``state`` to ``path`` atomically;
    returns the path.

    ``model_config`` and ``dtype`` describe the network whose weights ``state.model`` holds;
    ``train_config`` is ``TrainConfig.to_dict()``; ``mean`` / ``std`` the training
    normalisation (3 values each); ``data`` the fingerprint of the run's data
    (``DataFingerprint.to_dict()``, :mod:`minieffnet.data_fingerprint`), None for none.
    Raises :class:`NonFiniteError` (a ValueError) naming the first model array that holds NaN
    or infinity, before anything is written: the file at ``path`` then keeps the last good
    state.
    """
    arrays = {f"model.{k}": v for k, v in state.model.items()}
    for name, value in arrays.items():
        if not np.isfinite(value).all():
            raise NonFiniteError(f"{name} holds NaN or infinity")
    arrays.update((f"optimizer.{k}", np.asarray(v)) for k, v in state.optimizer.items())
    if state.ema is not None:
        arrays.update((f"ema.{k}", np.asarray(v)) for k, v in state.ema.items())
    meta = {
        "format": TRAINING_FORMAT, "version": TRAINING_VERSION,
        "train_config": train_config,
        "model_config": config_to_dict(model_config),
        "dtype": np.dtype(dtype).name,
        "class_names": list(class_names),
        "normalization": {"mean": list(mean), "std": list(std)},
        "position": {"epoch": state.epoch, "batch": state.batch, "step": state.step},
        "epoch_totals": state.totals,
        "elapsed_s": state.elapsed_s,
        "rng": {"model": state.model_rng, "loader_epoch_start": state.loader_rng},
    }
    if data is not None:
        meta["data"] = data
    return save_npz_atomic(path, arrays, meta)


def read_training_checkpoint(path: str | os.PathLike
                             ) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """``(parts, meta)`` of the training checkpoint at ``path``: see
    :func:`split_training_checkpoint`. Raises FileNotFoundError, or BadFileError naming the
    file (and the field) if it is truncated, corrupt, not a training checkpoint of this
    version, or holds malformed metadata, non-finite arrays or weights that are not
    float32 / float64."""
    arrays, meta = read_checkpoint(path)
    return split_training_checkpoint(arrays, meta, path), meta


def split_training_checkpoint(arrays: dict[str, np.ndarray], meta: Any,
                              path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """The state dicts in a training checkpoint's ``arrays`` (as :func:`read_checkpoint`
    returns them), after checking that ``meta`` names this format and version, that every
    field but ``train_config`` and ``data`` (whose readers check them, inside
    :func:`checkpoint_field`) is well formed and that the weights are float32 or float64:
    ``{"model": ..., "optimizer": ..., "ema": ...}``, keys without their prefix (``ema`` is
    empty when the run kept no EMA). ``path`` names the file in errors
    (BadFileError)."""
    _check_meta(meta, path, "training", TRAINING_FORMAT, TRAINING_VERSION, _TRAINING_META)
    _dtype(meta, path)
    _check_weights({k: v for k, v in arrays.items() if k.startswith(_WEIGHT_PREFIXES)}, path)
    config = _stored_config(meta, "model_config", path)
    with checkpoint_field(path, "class_names"):
        check_class_names(meta["class_names"], config.num_classes, "class_names")
    with checkpoint_field(path, "normalization"):
        norm = meta["normalization"]
        check_statistics(norm["mean"], norm["std"], "normalization")
    with checkpoint_field(path, "position"):
        _check_numbers(meta["position"], is_int, "integers", ("epoch", "batch", "step"))
    with checkpoint_field(path, "epoch_totals"):
        _check_numbers(meta["epoch_totals"], is_real, "finite numbers")
    with checkpoint_field(path, "elapsed_s"):
        _check_numbers(meta, is_real, "a finite number", ("elapsed_s",))
    for part in ("model", "loader_epoch_start"):
        with checkpoint_field(path, "rng"):
            state = meta["rng"][part]
        _generator_from_state(state, f"rng.{part}", path)
    return {part: _strip(arrays, f"{part}.") for part in _TRAINING_PARTS}


def training_state(parts: dict[str, dict[str, np.ndarray]], meta: dict) -> TrainingState:
    """The :class:`TrainingState` a training checkpoint holds, ``parts`` and ``meta`` as
    :func:`read_training_checkpoint` returns them (checked): what
    :func:`save_training_checkpoint` wrote, ``ema`` None when the run kept no EMA."""
    position = meta["position"]
    return TrainingState(
        model=parts["model"], optimizer=parts["optimizer"], ema=parts["ema"] or None,
        model_rng=meta["rng"]["model"], loader_rng=meta["rng"]["loader_epoch_start"],
        epoch=position["epoch"], batch=position["batch"], step=position["step"],
        totals=meta["epoch_totals"], elapsed_s=meta["elapsed_s"])


def _check_numbers(d: Any, ok: Callable[[Any], bool], what: str,
                   keys: Sequence[str] | None = None) -> None:
    """ValueError unless ``d`` is a dict whose ``keys`` (default: all) hold values >= 0 that
    pass ``ok`` (``what`` says what they must be)."""
    if not isinstance(d, dict):
        raise ValueError(f"must be a dict, got {type(d).__name__}")
    for k in d if keys is None else keys:
        if not (ok(d[k]) and d[k] >= 0):
            raise ValueError(f"{k} must be {what} >= 0, got {d[k]!r:.80}")


def training_model_config(meta: dict, path: str | os.PathLike) -> EfficientNetConfig:
    """The network a training checkpoint's ``meta`` describes; BadFileError naming ``path``
    if its ``model_config`` is invalid."""
    return _stored_config(meta, "model_config", path)


def training_model(meta: dict, parts: dict[str, dict[str, np.ndarray]],
                   path: str | os.PathLike) -> EfficientNet:
    """The network of a training checkpoint (as :func:`read_training_checkpoint` returns it)
    with the weights it reports with (:func:`evaluation_weights`); BadFileError naming
    ``path`` if they do not fit its stated architecture."""
    model = EfficientNet(training_model_config(meta, path), dtype=_dtype(meta, path))
    _load_arrays(model, evaluation_weights(parts), path)
    return model


def evaluation_weights(parts: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The state dict a run reports with: the EMA's averaged weights when it kept an EMA, else
    the model's. ``parts`` as :func:`split_training_checkpoint` returns them."""
    return _strip(parts["ema"], "shadow.") or parts["model"]


def _strip(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The entries of ``arrays`` whose key starts with ``prefix``, keyed without it."""
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
