"""Save and load a whole model: its weights, BatchNorm statistics, configuration and RNG state.

A model checkpoint is one ``.npz`` file written by :func:`minieffnet.io.save_npz_atomic`:

* one array per ``model.state_dict()`` entry, keyed by its dotted name
  (``blocks.3.se.reduce_weight``), in the model's dtype;
* JSON metadata ``{"format": "minieffnet.model", "version": 1, "dtype": "float32",
  "config": config_to_dict(model.config), "rng_state": ..., "extra": extra_meta}``.

Nothing is pickled, so loading a file from an untrusted source cannot run code, and the write
is atomic, so a crash mid-save leaves the previous checkpoint intact. Because the file carries
the configuration, :func:`load_model` rebuilds the network without being told which it is.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from .io import load_npz, save_npz_atomic
from .model import EfficientNet
from .scaling import BlockSpec, EfficientNetConfig

FORMAT = "minieffnet.model"
VERSION = 1

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

    Raises ValueError naming any missing or unknown field (of the config or of a block), and
    whatever :class:`EfficientNetConfig` itself rejects (blocks that do not chain, ...).
    """
    check_fields("config", d, EfficientNetConfig)
    blocks = d["blocks"]
    if not isinstance(blocks, list):
        raise ValueError(f"config: blocks must be a list of dicts, got {type(blocks).__name__}")
    specs = []
    for i, b in enumerate(blocks):
        check_fields(f"config block {i}", b, BlockSpec)
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
    return (f"{config.name} (width {config.width:g}, depth {config.depth:g}, "
            f"{len(config.blocks)} blocks, {config.num_classes} classes)")


# --- saving and loading ----------------------------------------------------------------------
def save_model(path: str | os.PathLike, model: EfficientNet,
               extra_meta: dict | None = None) -> Path:
    """Write ``model`` (weights, BatchNorm running statistics, config, dtype, RNG state) to
    ``path`` atomically, without pickle; returns the path.

    ``extra_meta`` is any JSON-serialisable dict (epoch, metrics, ...), returned by
    ``load_model(path, return_meta=True)``. The previous file at ``path``, if any, stays
    intact until the new one is complete.
    """
    meta = {
        "format": FORMAT,
        "version": VERSION,
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

    Raises FileNotFoundError if ``path`` does not exist and ValueError naming the file if it
    is truncated, corrupt, holds pickled objects or is not a minieffnet model checkpoint.
    """
    arrays, meta = _read(path)
    try:
        config = config_from_dict(meta["config"])
    except (ValueError, TypeError) as e:
        raise ValueError(f"checkpoint {path} has an invalid config: {e}") from e
    if meta["dtype"] not in ("float32", "float64"):
        raise ValueError(f"checkpoint {path} has dtype {meta['dtype']!r}; "
                         "expected 'float32' or 'float64'")
    model = EfficientNet(config, dtype=np.dtype(meta["dtype"]))
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
    arrays, meta = _read(path)
    try:
        stored = config_from_dict(meta["config"])
    except (ValueError, TypeError) as e:
        raise ValueError(f"checkpoint {path} has an invalid config: {e}") from e
    diffs = config_differences(stored, model.config, ignore=_NON_ARCHITECTURE_FIELDS,
                               ignore_block=_NON_ARCHITECTURE_BLOCK_FIELDS)
    if diffs:
        raise ValueError(f"checkpoint {path} holds {_describe(stored)} but the model is "
                         f"{_describe(model.config)}; they differ in: {'; '.join(diffs)}")
    _restore(model, arrays, meta, path)
    return model


def _read(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays and metadata of a model checkpoint, after checking its format and version."""
    arrays, meta = load_npz(path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"checkpoint {path} is not a minieffnet model checkpoint "
                         f"(format {found!r}, expected {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise ValueError(f"checkpoint {path} has format version {meta.get('version')!r}; "
                         f"this minieffnet reads version {VERSION}")
    missing = [k for k in ("dtype", "config", "rng_state", "extra") if k not in meta]
    if missing:
        raise ValueError(f"checkpoint {path} lacks metadata {missing}")
    return arrays, meta


def _restore(model: EfficientNet, arrays: dict[str, np.ndarray], meta: dict,
             path: str | os.PathLike) -> None:
    """Copy weights and RNG state into ``model``; all checks run before anything changes."""
    rng = _generator_from_state(meta["rng_state"], path)
    try:
        model.load_state_dict(arrays)
    except ValueError as e:
        raise ValueError(f"checkpoint {path}: {e}") from e
    model.rng = rng
    model.set_rng(rng)


def _generator_from_state(state: Any, path: str | os.PathLike) -> np.random.Generator:
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS:
        raise ValueError(f"checkpoint {path} has an unknown RNG state (bit generator {name!r})")
    bit_generator = _BIT_GENERATORS[name]()
    try:
        bit_generator.state = state
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"checkpoint {path} has an invalid RNG state ({e})") from e
    return np.random.Generator(bit_generator)
