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
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .checkpoint import check_fields
from .errors import BadFileError, BadOptionError
from .data import DATASETS, Dataset, load_dataset, load_synthetic
from .io import write_text_atomic
from .optim import SCHEDULES, SGD, AdamW, Optimizer, RMSProp, make_schedule
from .progressive import Stage, progressive_stage
from .scaling import check_memory, count_activations, count_parameters, make_config
from .tta import TTA_LEVELS
from .validate import is_int, is_real

CONFIG_FILE = "config.json"  # the run's TrainConfig, in its folder
OPTIMIZERS = ("sgd", "rmsprop", "adamw")
# The built-in synthetic set is generated, so "all of it" needs a size: (train, test) images.
SYNTHETIC_SIZES = (8000, 1000)
# Fields that say where things are, not what is trained: they may change on resume.
_LOCATION_FIELDS = ("out_dir", "data_dir")
# Schedules whose warm-up is their rising phase, a fraction of the run (warmup_epochs < epochs).
_RISING_SCHEDULES = ("one_cycle", "triangular")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; stored as ``config.json`` in the run folder.

    The defaults are the quick start (``minieffnet train`` with no arguments): a narrow,
    half-depth B0 (cifar preset, 32 px) trained on the built-in synthetic set for a few
    minutes on 2 cores with a plain CIFAR recipe (SGD-Nesterov, one-cycle, label smoothing
    0.1, crop+flip).

    Model: ``variant`` "b0".."b7", ``preset`` "cifar" | "imagenet"; ``width``, ``depth``,
    ``resolution``, ``phi``, ``dropout``, ``drop_connect`` override the variant's values (None
    keeps them; see :func:`minieffnet.scaling.make_config`). Width and depth default to the
    quick start's: set them to None for a released variant's own, and with ``phi``. The class
    count comes from the data.

    Data: ``dataset`` "synthetic" | "cifar10" | "cifar100", or your own images as
    "folder:PATH" | "npz:PATH" (:mod:`minieffnet.data.sources`); ``data_dir`` the CIFAR root (None:
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

    Short-run recipe pieces (all off by default): ``zero_init_residual`` starts
    every residual block's projection BatchNorm scale at 0 (the block begins as the
    identity); ``progressive_from`` the first training resolution of EfficientNetV2's
    progressive learning (None: off), rising over ``progressive_stages`` equal groups of
    epochs to the network's resolution, with dropout and stochastic depth scaled from
    ``progressive_reg_from`` up to 1 (:mod:`minieffnet.progressive`); ``val_size`` holds N
    class-balanced training images out as a validation split (the same N images for every
    seed and ``train_size``), evaluated instead of the test set after each epoch, the test
    set then only after the last; ``final_test`` False (with ``val_size``) skips that test
    evaluation too, so a tuning run never sees the test set; ``eval_each_epoch`` False
    evaluates only after the last epoch; ``tta`` the test-time augmentation level of the last
    evaluation (0 none, 1 flip, 2 flip and 1-pixel shifts: :mod:`minieffnet.tta`), reported
    beside the plain numbers; ``time_budget`` minutes for the whole run: ``epochs`` becomes
    the most epochs that fit, measured before the first step (:mod:`minieffnet.budget`), and
    the chosen number is what ``config.json`` stores. The ``triangular`` schedule is the
    short-run CIFAR one.

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
    zero_init_residual: bool = False
    progressive_from: int | None = None
    progressive_stages: int = 3
    progressive_reg_from: float = 0.0
    val_size: int | None = None
    eval_each_epoch: bool = True
    final_test: bool = True
    tta: int = 0
    time_budget: float | None = None
    seed: int = 0
    out_dir: str | None = None

    def __post_init__(self) -> None:
        def fail(field: str, requirement: str):
            raise BadOptionError(f"TrainConfig: {field} must be {requirement}, "
                                 f"got {getattr(self, field)!r}")

        for field, choices in (("dataset", DATASETS), ("optimizer", OPTIMIZERS),
                               ("schedule", tuple(SCHEDULES))):
            if getattr(self, field) not in choices:
                fail(field, f"one of {', '.join(choices)}")
        for field in ("epochs", "batch_size"):
            if not is_int(getattr(self, field)) or getattr(self, field) < 1:
                fail(field, "a positive integer")
        for field in ("train_size", "test_size", "val_size"):
            value = getattr(self, field)
            if value is not None and (not is_int(value) or value < 1):
                fail(field, "a positive integer or None")
        if not is_int(self.cutout) or self.cutout < 0:
            fail("cutout", "a non-negative integer")
        if not is_int(self.seed) or self.seed < 0:
            fail("seed", "a non-negative integer")
        if not is_real(self.lr) or self.lr < 0:
            fail("lr", "a finite number >= 0")
        # A momentum of 1 or more never forgets a gradient, and a weight decay of 1 or more
        # takes a step's whole lr-scaled weight away: both diverge, and the divergence would
        # then be blamed on the learning rate.
        for field in ("momentum", "weight_decay"):
            if not is_real(getattr(self, field)) or not 0 <= getattr(self, field) < 1:
                fail(field, "in [0, 1)")
        if not is_real(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            fail("label_smoothing", "in [0, 1)")
        if self.ema is not None and (not is_real(self.ema) or not 0 < self.ema < 1):
            fail("ema", "a decay in (0, 1) or None")
        if self.warmup_epochs is not None:
            # longer than the run, the warm-up would never reach lr
            if not is_real(self.warmup_epochs) or not 0 <= self.warmup_epochs <= self.epochs:
                fail("warmup_epochs", f"a number of epochs from 0 to epochs ({self.epochs}) "
                                      "or None")
            if self.schedule in _RISING_SCHEDULES and not 0 < self.warmup_epochs < self.epochs:
                fail("warmup_epochs", f"between 0 and epochs ({self.epochs}) for "
                                      f"{self.schedule}, whose rising phase it sets")
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            fail("momentum", "> 0 for Nesterov SGD")
        for field in ("augment", "nesterov", "zero_init_residual", "eval_each_epoch",
                      "final_test"):
            if not isinstance(getattr(self, field), bool):
                fail(field, "True or False")
        # The model options are checked by the function that will use them (10 classes is a
        # stand-in: the real count comes from the data).
        network = make_config(self.variant, 10, preset=self.preset, **self.model_overrides())
        # A batch whose activations cannot fit is refused now, not after loading the data.
        check_memory(f"training EfficientNet {network.name} at {network.resolution} px",
                     count_parameters(network), count_activations(network),
                     batch_size=self.batch_size)
        for field in _LOCATION_FIELDS:
            # "" would be the current folder: a run trained over whatever is there
            if getattr(self, field) is not None and (not isinstance(getattr(self, field), str)
                                                     or not getattr(self, field)):
                fail(field, "a path (a non-empty str) or None")
        self._check_recipe_fields(fail)

    def _check_recipe_fields(self, fail: Callable[[str, str], None]) -> None:
        """Validate the short-run recipe fields (progressive learning, TTA, time budget)."""
        if self.progressive_from is not None:
            final = self.final_resolution()
            if not is_int(self.progressive_from) or not 0 < self.progressive_from < final:
                fail("progressive_from", f"a resolution between 1 and the network's {final} "
                                         "or None")
        if not is_int(self.progressive_stages) or self.progressive_stages < 2:
            fail("progressive_stages", "an integer >= 2")
        if not is_real(self.progressive_reg_from) or not 0 <= self.progressive_reg_from <= 1:
            fail("progressive_reg_from", "in [0, 1]")
        if not self.final_test and self.val_size is None:
            fail("final_test", "True without a validation split (val_size): the run would "
                               "evaluate nothing")
        if not is_int(self.tta) or self.tta not in TTA_LEVELS:
            fail("tta", f"one of {TTA_LEVELS}")
        if self.time_budget is not None and (not is_real(self.time_budget)
                                             or self.time_budget <= 0):
            fail("time_budget", "a number of minutes > 0 or None")

    def final_resolution(self) -> int:
        """The network's input resolution: where it is evaluated and trained at the end."""
        return make_config(self.variant, 10, preset=self.preset,
                           **self.model_overrides()).resolution

    def stage(self, epoch: int, epochs: int | None = None) -> Stage:
        """Resolution and regularisation factor of 0-based ``epoch`` in a run of ``epochs``
        (default ``self.epochs``): :func:`~minieffnet.progressive.progressive_stage`; without
        progressive learning, the network's resolution and 1."""
        return progressive_stage(epoch, epochs or self.epochs,
                                 start_resolution=self.progressive_from,
                                 final_resolution=self.final_resolution(),
                                 stages=self.progressive_stages,
                                 start_regularization=self.progressive_reg_from)

    def model_overrides(self) -> dict[str, Any]:
        """The model options that are set, as keyword arguments of :func:`efficientnet`."""
        return {k: getattr(self, k) for k in ("width", "depth", "resolution", "phi", "dropout",
                                              "drop_connect") if getattr(self, k) is not None}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: every field by name."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Rebuild from :meth:`to_dict`'s output; ValueError names missing or unknown fields.

        Fields added after runs were first recorded (:data:`_ADDED_FIELDS`) may be missing:
        they take their defaults, which reproduce what those runs did.
        """
        if isinstance(d, dict):
            d = {**{f.name: f.default for f in dataclasses.fields(cls)
                    if f.name in _ADDED_FIELDS}, **d}
        check_fields("TrainConfig", d, cls)
        return cls(**d)


# The short-run recipe's fields: a config.json written before they existed has none of them,
# and must still load (with their defaults).
_ADDED_FIELDS = ("zero_init_residual", "progressive_from", "progressive_stages",
                 "progressive_reg_from", "val_size", "eval_each_epoch", "final_test", "tta",
                 "time_budget")


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
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadFileError(f"{path} is not valid JSON ({e})") from e
    except (ValueError, TypeError) as e:  # the settings in it
        raise BadFileError(f"{path}: {e}") from e


# --- the pieces a run is built from ----------------------------------------------------------
def load_datasets(config: TrainConfig) -> tuple[Dataset, Dataset]:
    """``(train, test)`` for ``config.dataset``, cut to ``train_size`` / ``test_size``
    (without the validation images: :func:`load_splits`)."""
    train, _, test = load_splits(config)
    return train, test


def load_splits(config: TrainConfig) -> tuple[Dataset, Dataset | None, Dataset]:
    """``(train, validation, test)`` for ``config.dataset``; validation is None without
    ``val_size``.

    The ``val_size`` validation images are held out of the whole training split first
    (class-balanced, seed 0 whatever the run's seed), so that every run with the same
    ``val_size`` validates on the same images and never trains on them; ``train_size`` then
    picks from the rest. The synthetic set is generated with ``val_size`` more training
    images, so that ``train_size`` keeps its meaning. Subsets keep the whole training split's
    normalisation statistics.
    """
    val_size = config.val_size or 0
    if config.dataset == "synthetic":
        train, test = load_synthetic((config.train_size or SYNTHETIC_SIZES[0]) + val_size,
                                     config.test_size or SYNTHETIC_SIZES[1], seed=0)
        train_size = test_size = None  # generated at their sizes
    else:
        train, test = load_dataset(config.dataset, config.data_dir)
        train_size, test_size = config.train_size, config.test_size
    val = None
    if val_size:
        if val_size >= len(train):
            raise ValueError(f"val_size {val_size} leaves no training images: "
                             f"{train.name} has {len(train)}")
        held = train.balanced_indices(val_size)
        rest = np.setdiff1d(np.arange(len(train)), held)
        val = train.subset(held, name=f"{train.name.removesuffix('-train')}-val")
        train = train.subset(rest)
    return (train if train_size is None else train.balanced_subset(train_size), val,
            test if test_size is None else test.balanced_subset(test_size))


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
    if config.schedule in _RISING_SCHEDULES:
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
