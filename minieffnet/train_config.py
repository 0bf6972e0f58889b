"""The run configuration: :class:`TrainConfig` (what a training run is) and the pieces it
builds (data sets, optimiser, learning-rate schedule), plus ``config.json`` in the run folder.

    >>> config = TrainConfig(epochs=3, lr=0.05)
    >>> train, test = load_datasets(config)           # (Dataset, Dataset)
    >>> schedule = build_schedule(config, steps_per_epoch=62)
    >>> schedule(0), schedule(61)                     # lr at a step: a pure function

The loop that uses them is :class:`minieffnet.train.Trainer`; nothing here trains.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .checkpoint import check_fields
from .data import Dataset, load_cifar10, load_cifar100, load_synthetic
from .io import write_text_atomic
from .optim import SCHEDULES, SGD, AdamW, Optimizer, RMSProp, make_schedule
from .scaling import make_config

CONFIG_FILE = "config.json"  # the run's TrainConfig, in its folder
DATASETS = ("synthetic", "cifar10", "cifar100")
OPTIMIZERS = ("sgd", "rmsprop", "adamw")
# The built-in synthetic set is generated, so "all of it" needs a size: (train, test) images.
SYNTHETIC_SIZES = (8000, 1000)
# Fields that say where things are, not what is trained: they may change on resume.
_LOCATION_FIELDS = ("out_dir", "data_dir")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; stored as ``config.json`` in the run folder.

    The defaults are the quick start (``minieffnet train`` with no arguments): a narrow,
    half-depth B0 (cifar preset, 32 px) trained on the built-in synthetic set for a few
    minutes on 2 cores with the guide's plain recipe (SGD-Nesterov, one-cycle, label smoothing
    0.1, crop+flip).

    Model: ``variant`` "b0".."b7", ``preset`` "cifar" | "imagenet"; ``width``, ``depth``,
    ``resolution``, ``phi``, ``dropout``, ``drop_connect`` override the variant's values (None
    keeps them; see :func:`minieffnet.scaling.make_config`). Width and depth default to the
    quick start's: set them to None for a released variant's own, and with ``phi``. The class
    count comes from the data.

    Data: ``dataset`` "synthetic" | "cifar10" | "cifar100"; ``data_dir`` the CIFAR root (None:
    ``$MINIEFFNET_DATA`` or the user cache; downloaded if missing); ``train_size`` /
    ``test_size`` use N images spread evenly over the classes, the same N for every seed
    (:meth:`~minieffnet.data.Dataset.balanced_subset`; None: all; the synthetic set then has
    :data:`SYNTHETIC_SIZES`, generated with seed 0 whatever ``seed`` is, so runs with different
    seeds see the same data).

    Optimisation: ``optimizer`` "sgd" | "rmsprop" | "adamw"; ``lr`` the base (for one_cycle:
    peak) rate; ``momentum`` (sgd, rmsprop) and ``nesterov`` (sgd); ``weight_decay`` (coupled L2
    for sgd/rmsprop, decoupled for adamw; never on BatchNorm or biases); ``schedule`` a key of
    :data:`minieffnet.optim.SCHEDULES`; ``warmup_epochs`` linear warm-up length (for one_cycle:
    its rising phase, default 30 % of the run; None: no warm-up otherwise);
    ``label_smoothing``; ``augment`` random crop (padding 4) + horizontal flip; ``cutout`` side
    of the cutout square (0: none); ``ema`` decay of the weight average used for evaluation
    (None: no EMA; TF's warm-up ``min(decay, (1+t)/(10+t))`` is on, so short runs benefit).

    Run: ``seed`` initialises the model (``default_rng(seed)``) and the training loader's own
    Generator (``default_rng([seed, 1])``); ``out_dir`` the run folder (None: a new
    ``runs/<dataset>-<date>-<time>``).
    """

    variant: str = "b0"
    preset: str = "cifar"
    width: float | None = 0.25
    depth: float | None = 0.5
    resolution: int | None = None
    phi: float | None = None
    dropout: float | None = None
    drop_connect: float | None = None
    dataset: str = "synthetic"
    data_dir: str | None = None
    train_size: int | None = None
    test_size: int | None = None
    epochs: int = 4
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "one_cycle"
    warmup_epochs: float | None = None
    label_smoothing: float = 0.1
    augment: bool = True
    cutout: int = 0
    ema: float | None = None
    seed: int = 0
    out_dir: str | None = None

    def __post_init__(self) -> None:
        def fail(field: str, requirement: str):
            raise ValueError(f"TrainConfig: {field} must be {requirement}, "
                             f"got {getattr(self, field)!r}")

        for field, choices in (("dataset", DATASETS), ("optimizer", OPTIMIZERS),
                               ("schedule", tuple(SCHEDULES))):
            if getattr(self, field) not in choices:
                fail(field, f"one of {', '.join(choices)}")
        for field in ("epochs", "batch_size"):
            if not _is_int(getattr(self, field)) or getattr(self, field) < 1:
                fail(field, "a positive integer")
        for field in ("train_size", "test_size"):
            value = getattr(self, field)
            if value is not None and (not _is_int(value) or value < 1):
                fail(field, "a positive integer or None")
        if not _is_int(self.cutout) or self.cutout < 0:
            fail("cutout", "a non-negative integer")
        if not _is_int(self.seed) or self.seed < 0:
            fail("seed", "a non-negative integer")
        for field in ("lr", "momentum", "weight_decay"):
            if not _is_real(getattr(self, field)) or getattr(self, field) < 0:
                fail(field, "a finite number >= 0")
        if not _is_real(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            fail("label_smoothing", "in [0, 1)")
        if self.ema is not None and (not _is_real(self.ema) or not 0 < self.ema < 1):
            fail("ema", "a decay in (0, 1) or None")
        if self.warmup_epochs is not None:
            if not _is_real(self.warmup_epochs) or self.warmup_epochs < 0:
                fail("warmup_epochs", "a number >= 0 or None")
            if self.schedule == "one_cycle" and not 0 < self.warmup_epochs < self.epochs:
                fail("warmup_epochs", f"between 0 and epochs ({self.epochs}) for one_cycle, "
                                      "whose rising phase it sets")
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            fail("momentum", "> 0 for Nesterov SGD")
        for field in ("augment", "nesterov"):
            if not isinstance(getattr(self, field), bool):
                fail(field, "True or False")
        # The model options are checked by the function that will use them (10 classes is a
        # stand-in: the real count comes from the data).
        make_config(self.variant, 10, preset=self.preset, **self.model_overrides())

    def model_overrides(self) -> dict[str, Any]:
        """The model options that are set, as keyword arguments of :func:`efficientnet`."""
        return {k: getattr(self, k) for k in ("width", "depth", "resolution", "phi", "dropout",
                                              "drop_connect") if getattr(self, k) is not None}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: every field by name."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Rebuild from :meth:`to_dict`'s output; ValueError names missing or unknown fields."""
        check_fields("TrainConfig", d, cls)
        return cls(**d)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) \
        and math.isfinite(v)


def train_config_differences(a: TrainConfig, b: TrainConfig) -> list[str]:
    """``["lr 0.1 vs 0.05", ...]`` for every field (but ``out_dir``, ``data_dir``) that differs."""
    return [f"{f.name} {getattr(a, f.name)!r} vs {getattr(b, f.name)!r}"
            for f in dataclasses.fields(a)
            if f.name not in _LOCATION_FIELDS and getattr(a, f.name) != getattr(b, f.name)]


def save_train_config(run_dir: str | os.PathLike, config: TrainConfig) -> Path:
    """Write ``config`` to ``run_dir/config.json``, indented, atomically; returns the path."""
    return write_text_atomic(Path(run_dir) / CONFIG_FILE,
                             json.dumps(config.to_dict(), indent=2) + "\n")


def load_train_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The :class:`TrainConfig` stored in ``run_dir/config.json``."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {run_dir} is not a training run")
    try:
        return TrainConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from e


# --- the pieces a run is built from ----------------------------------------------------------
def load_datasets(config: TrainConfig) -> tuple[Dataset, Dataset]:
    """``(train, test)`` for ``config.dataset``, cut to ``train_size`` / ``test_size``."""
    if config.dataset == "synthetic":
        return load_synthetic(config.train_size or SYNTHETIC_SIZES[0],
                              config.test_size or SYNTHETIC_SIZES[1], seed=0)
    loader = load_cifar10 if config.dataset == "cifar10" else load_cifar100
    train, test = loader(config.data_dir)
    return tuple(d if n is None else d.balanced_subset(n)
                 for d, n in ((train, config.train_size), (test, config.test_size)))


def build_optimizer(config: TrainConfig, params: Sequence) -> Optimizer:
    """The optimiser ``config.optimizer`` over ``params``, each keeping its ``decay`` flag."""
    if config.optimizer == "sgd":
        return SGD(params, config.lr, momentum=config.momentum, nesterov=config.nesterov,
                   weight_decay=config.weight_decay)
    if config.optimizer == "rmsprop":
        return RMSProp(params, config.lr, momentum=config.momentum,
                       weight_decay=config.weight_decay)
    return AdamW(params, config.lr, weight_decay=config.weight_decay)


def build_schedule(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """``step -> lr`` for ``config.schedule`` over ``config.epochs * steps_per_epoch`` steps."""
    total = config.epochs * steps_per_epoch
    warmup = config.warmup_epochs
    warmup_steps = round(warmup * steps_per_epoch) if warmup else 0
    kwargs: dict[str, Any] = {"base_lr": config.lr}
    if config.schedule == "one_cycle":
        kwargs.update(total_steps=total)
        if warmup:
            kwargs.update(pct_start=warmup / config.epochs)
    elif config.schedule == "warmup_cosine":
        kwargs.update(total_steps=total, warmup_steps=warmup_steps)
    elif config.schedule == "exponential_staircase":
        kwargs.update(steps_per_epoch=steps_per_epoch, warmup_steps=warmup_steps)
    else:
        kwargs.update(warmup_steps=warmup_steps)
    return make_schedule(config.schedule, **kwargs)
