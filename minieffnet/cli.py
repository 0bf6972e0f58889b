"""The ``minieffnet`` command line.

Each sub-command is a ``cmd_<name>(args) -> exit status``, chosen by argparse
(``set_defaults(func=...)``); every list of choices is the library's own constant. Exit
status: 0 done, 1 training diverged, 2 bad arguments, files or data (one line on stderr), 3
an internal error (a bug: one line, ``--debug`` for the traceback), 130 interrupted (Ctrl-C).

The first command after installing or changing minieffnet compiles the Numba kernels it runs
(they are cached on disk for later runs): its first training step ends about 15 s after launch
on 2 idle cores instead of 2 s. It says so on stderr, in one line, when the compiling starts
(:func:`_announce_compiling`).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import inspect
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from numba.core import event as numba_event

from .cam import class_activation_maps, plot_cams
from .checkpoint import CHECKPOINT_FILE
from .data import CIFAR10_CLASSES, Dataset
from .errors import BadOptionError
from .experiments import (FIGURE4_BASELINES, FIGURE4_WIDTHS, GRID_STEP, GRID_TOLERANCE,
                          LONG_TARGETS, PROTOCOLS, STRATEGIES, TARGETS, StudyProtocol,
                          budget_curve, compare_scaling, dask_executor, grid_candidates,
                          grid_search, time_study, width_per_baseline)
from .inference import load_trained_model, predict, prepare_images, read_image, softmax
from .opcheck import print_op_table
from .optim import SCHEDULES
from .recipes import RECIPES, recipe_config
from .safe_text import printable
from .scaling import (COEFFICIENTS, DROP_CONNECT, PAPER_COEFFICIENTS, PRESETS,
                      count_activations, count_flops, count_parameters, make_config,
                      memory_estimate, stage_table)
from .train import Trainer, TrainingDiverged, TrainingInterrupted, evaluate
from .train_config import (DATASETS, OPTIMIZERS, SYNTHETIC_SIZES, TrainConfig, load_datasets,
                           load_train_config)

VARIANTS = tuple(COEFFICIENTS)  # "b0", ..., "b7"
CAM_FILE = "cam.png"  # the figure cam writes, by default and inside a folder given as --out


# The most seeds a study takes: each is one more training run of every model, and a count
# far beyond it would hang listing the trials before the first one trains.
MAX_SEEDS = 1000


def positive_int(text: str, most: int | None = None) -> int:
    """argparse type: an integer >= 1 (``--top 0`` or ``-3`` would print nothing or all), and
    at most ``most`` where given (``functools.partial(positive_int, most=N)``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    if most is not None and value > most:
        raise argparse.ArgumentTypeError(f"must be at most {most:,}, got {value:,}")
    return value


def path_arg(text: str) -> str:
    """argparse type of every path option: ``~`` and ``~user`` expanded, as a shell does
    (which it does not in ``--out=~/run`` or in quotes), so that every path means the same
    wherever it is used. An empty path (the current folder: a run would train over it), a
    NUL character (no file system takes one) and a ``~user`` of no known user are refused."""
    if not text or "\0" in text:
        raise argparse.ArgumentTypeError(f"expected a path, got {text!r}")
    path = os.path.expanduser(text)
    if path.startswith("~"):  # expanduser leaves what it cannot expand
        raise argparse.ArgumentTypeError(f"cannot expand {Path(path).parts[0]!r} in {text!r}: "
                                         f"no such user (write ./{text} for a name that "
                                         "starts with ~)")
    return path


def dataset_arg(text: str) -> str:
    """argparse type of ``--dataset``: a built-in name as it is; ``folder:PATH`` and
    ``npz:PATH`` with PATH expanded by :func:`path_arg` (``choices`` then checks the kind)."""
    kind, sep, path = text.partition(":")
    return f"{kind}:{path_arg(path)}" if sep and path else text


def figure_arg(text: str) -> str:
    """argparse type of ``cam --out``: a path (:func:`path_arg`); an existing folder means
    ``FOLDER/cam.png``, and a name without a suffix gets ``.png`` (matplotlib would add it),
    so that the path printed is the file written."""
    path = Path(path_arg(text))
    if path.is_dir():
        return str(path / CAM_FILE)
    return str(path) if path.suffix else f"{path}.png"


# The options that choose a network, declared once: TrainConfig field -> argparse keywords (the
# flag is the field with dashes). info, train and the studies each add the ones they take with
# their own help and default, since an option left out means something else to each: the
# variant's value (info), the quick start's (train: TrainConfig), the study base's.
_NETWORK_OPTIONS: dict[str, dict[str, Any]] = {
    "variant": {},
    "preset": {"choices": PRESETS},
    "width": {"type": float},
    "depth": {"type": float},
    "resolution": {"type": positive_int},
    "phi": {"type": float},
    "dropout": {"type": float},
    "drop_connect": {"type": float},
    "zero_init_residual": {"action": argparse.BooleanOptionalAction},
}


def _network_option(group, field: str, help: str | None, **kw) -> None:
    """Add to ``group`` the option that sets network ``field`` (:data:`_NETWORK_OPTIONS`),
    with the sub-command's ``help`` and ``kw`` (its default)."""
    group.add_argument(f"--{field.replace('_', '-')}", dest=field, help=help,
                       **_NETWORK_OPTIONS[field], **kw)


# make_config's defaults (variant, num_classes, preset, ...): info's for the options left out.
_MAKE_CONFIG_DEFAULTS = {name: param.default
                         for name, param in inspect.signature(make_config).parameters.items()}


def _info_classes(preset: str) -> int:
    """info's class count without --num-classes: CIFAR-10's for the cifar preset, else
    make_config's (ImageNet's)."""
    return len(CIFAR10_CLASSES) if preset == "cifar" else _MAKE_CONFIG_DEFAULTS["num_classes"]


def _add_model_args(p: argparse.ArgumentParser) -> None:
    """Arguments that choose a network: a variant, or custom coefficients, or φ."""
    d = _MAKE_CONFIG_DEFAULTS
    p.add_argument("variant", nargs="?", default=d["variant"],
                   help=f"{VARIANTS[0]}..{VARIANTS[-1]} (default {d['variant']})")
    _network_option(p, "preset", None, default=d["preset"])
    p.add_argument("--num-classes", type=positive_int, default=None,
                   help=f"default {_info_classes('imagenet')} (imagenet preset) or "
                        f"{_info_classes('cifar')} (cifar preset)")
    _network_option(p, "width", "custom width multiplier")
    _network_option(p, "depth", "custom depth multiplier")
    _network_option(p, "resolution", "input resolution (pixels)")
    alpha, beta, gamma = PAPER_COEFFICIENTS
    _network_option(p, "phi", f"compound coefficient: d={alpha}^φ, w={beta}^φ, r={gamma}^φ")


def _config_from_args(args):
    num_classes = args.num_classes or _info_classes(args.preset)
    overrides = {k: getattr(args, k) for k in ("width", "depth", "resolution", "phi")
                 if getattr(args, k) is not None}
    return make_config(args.variant, num_classes, preset=args.preset, **overrides)


def cmd_info(args) -> int:
    """Print the stage table (like the paper's Table 1), parameters and FLOPs."""
    cfg = _config_from_args(args)
    print(f"EfficientNet {cfg.name} ({args.preset} preset): width {cfg.width:g}, depth "
          f"{cfg.depth:g}, resolution {cfg.resolution}, dropout {cfg.dropout:g}, "
          f"{cfg.num_classes} classes\n")
    print(f"{'stage':>5}  {'operator':<24}{'resolution':>12}{'channels':>10}{'layers':>8}"
          f"{'params':>13}{'FLOPs (MAdds)':>16}")
    for r in stage_table(cfg):
        res = f"{r.resolution[0]}x{r.resolution[1]}"
        print(f"{r.stage:>5}  {r.operator:<24}{res:>12}{r.channels:>10}{r.layers:>8}"
              f"{r.params:>13,}{r.flops:>16,}")
    params, flops = count_parameters(cfg), count_flops(cfg)
    print(f"\nparameters: {params:,}   FLOPs: {flops / 1e9:.3f} B multiply-adds "
          f"at {cfg.resolution}x{cfg.resolution}")
    # float32, the lower bounds minieffnet refuses networks by (scaling.memory_estimate)
    weights = memory_estimate(params, training=False)
    per_image = memory_estimate(0, count_activations(cfg), batch_size=1)
    print(f"memory: {weights / 2**20:,.1f} MiB of weights; training keeps "
          f"{per_image / 2**20:,.1f} MiB of activations per image")
    return 0


def _add_train_args(p: argparse.ArgumentParser) -> None:
    """One option per :class:`~minieffnet.train_config.TrainConfig` field, plus run handling.

    Options left out keep no value (argparse.SUPPRESS), so that the config's own defaults
    apply and ``--resume`` can tell which settings were given on the command line.
    """
    d = TrainConfig()

    def described(dest: str, help: str, kw: dict) -> str:
        """``help``, naming the field's default unless it says it or has none to name."""
        default = getattr(d, dest)
        # None defaults and switches are explained by the help text, or it names the default
        explained = default is None or "action" in kw or "default" in help
        return help if explained else f"{help} (default {default})"

    def option(group, flag, dest, help, **kw):
        group.add_argument(flag, dest=dest, default=argparse.SUPPRESS,
                           help=described(dest, help, kw), **kw)

    def or_none(kind):
        """An argparse type: ``kind(text)``, or None for "none" (so that an option a recipe
        sets can be switched off)."""
        def parse(text: str):
            return None if text.lower() == "none" else kind(text)
        parse.__name__ = f"{kind.__name__} or none"
        return parse

    m = p.add_argument_group("model")
    for field, help in (
            ("variant", f"{VARIANTS[0]}..{VARIANTS[-1]}"),
            ("preset", "network preset"),
            ("width", f"width multiplier (default {d.width}; with --variant or --phi: the "
                      "variant's)"),
            ("depth", f"depth multiplier (default {d.depth}; with --variant or --phi: the "
                      "variant's)"),
            ("resolution", "input resolution in pixels (default: the variant's)"),
            ("phi", "compound coefficient instead of width/depth/resolution"),
            ("dropout", "dropout before the classifier (default: the variant's)"),
            ("drop_connect", f"stochastic depth rate of the last block (default "
                             f"{DROP_CONNECT})"),
            ("zero_init_residual", "start every residual block's last BatchNorm scale at 0, "
                                   "so the block starts as the identity (default: off)")):
        _network_option(m, field, described(field, help, _NETWORK_OPTIONS[field]),
                        default=argparse.SUPPRESS)
    g = p.add_argument_group("data")
    option(g, "--dataset", "dataset", "training data", type=dataset_arg, choices=DATASETS)
    option(g, "--data-dir", "data_dir", "CIFAR root (default $MINIEFFNET_DATA, else the user "
           "cache; downloaded if missing)", type=path_arg, metavar="DIR")
    option(g, "--train-size", "train_size", "use N training images, balanced over the "
           f"classes (default all; synthetic: {SYNTHETIC_SIZES[0]})", type=int, metavar="N")
    option(g, "--test-size", "test_size", "use N test images, balanced over the classes "
           f"(default all; synthetic: {SYNTHETIC_SIZES[1]})", type=int, metavar="N")
    option(g, "--val-size", "val_size", "hold N class-balanced training images out as a "
           "validation split, evaluated after each epoch (the test set only after the last)",
           type=int, metavar="N")
    option(g, "--no-augment", "augment", "no random crop and flip", action="store_false")
    option(g, "--cutout", "cutout", "cutout square side in pixels (0: none)", type=int)
    o = p.add_argument_group("optimisation")
    option(o, "--epochs", "epochs", "epochs (with --time-budget: the most it may fit)",
           type=int)
    option(o, "--batch-size", "batch_size", "images per step", type=int)
    option(o, "--optimizer", "optimizer", "optimiser", choices=OPTIMIZERS)
    option(o, "--lr", "lr", "base (one_cycle: peak) learning rate", type=float)
    option(o, "--momentum", "momentum", "momentum (sgd, rmsprop)", type=float)
    option(o, "--no-nesterov", "nesterov", "plain momentum for sgd", action="store_false")
    option(o, "--weight-decay", "weight_decay", "weight decay (not on BatchNorm or biases)",
           type=float)
    option(o, "--schedule", "schedule", "learning-rate schedule", choices=tuple(SCHEDULES))
    option(o, "--warmup", "warmup_epochs", "warm-up epochs (default none; one_cycle, "
           "triangular: their rising phase, default 30%% / 23%% of the run)", type=float,
           metavar="EPOCHS")
    option(o, "--label-smoothing", "label_smoothing", "label smoothing", type=float)
    option(o, "--ema", "ema", "keep an EMA of the weights with this decay and evaluate it "
           "(default: none, no EMA)", type=or_none(float), metavar="DECAY")
    option(o, "--progressive-from", "progressive_from", "progressive learning: the first "
           "training resolution, rising in stages to --resolution (default: none, off)",
           type=or_none(int), metavar="PX")
    option(o, "--progressive-stages", "progressive_stages", "progressive learning: stages",
           type=int)
    option(o, "--progressive-reg-from", "progressive_reg_from", "progressive learning: "
           "dropout and stochastic depth scale at the first stage, rising to 1", type=float,
           metavar="SCALE")
    option(o, "--seed", "seed", "seed of the model and the data order", type=int)
    e = p.add_argument_group("evaluation and length")
    option(e, "--tta", "tta", "test-time augmentation of the last evaluation, reported "
           "beside the plain numbers: 0 none, 1 flip, 2 flip + 1-pixel shifts", type=int,
           metavar="LEVEL")
    option(e, "--eval-each-epoch", "eval_each_epoch", "evaluate after every epoch (default), "
           "or only after the last", action=argparse.BooleanOptionalAction)
    option(e, "--final-test", "final_test", "with --val-size: evaluate the test set after "
           "the last epoch (default), or never (a tuning run)",
           action=argparse.BooleanOptionalAction)
    option(e, "--time-budget", "time_budget", "minutes for the whole run: --epochs becomes "
           "the most epochs that fit, measured before the first step (default: none)",
           type=or_none(float), metavar="MINUTES")
    r = p.add_argument_group("run")
    r.add_argument("--recipe", metavar="NAME", help="a named recipe that sets the network "
                   f"and every option ({', '.join(RECIPES)}); options given override it")
    option(r, "--out", "out_dir", "run folder (default runs/<dataset>-<date>-<time>)",
           type=path_arg, metavar="RUN")
    r.add_argument("--from-run", type=path_arg, metavar="RUN", help="start from the settings "
                   "stored in RUN/config.json (another run, or a study's trial folder, to "
                   "reproduce it); options given override them, --out is not taken from it")
    r.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint, with its settings")
    r.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")


def _top1(row: dict, split: str) -> str:
    """``"83.5 %"``, or ``"83.5 % (84.1 % with TTA)"``: a metrics row's top-1 on ``split``
    ("test" or "val"), plain and test-time augmented when it holds both."""
    text = f"{100 * row[f'{split}_top1']:.1f} %"
    if f"{split}_tta_top1" in row:
        text += f" ({100 * row[f'{split}_tta_top1']:.1f} % with TTA)"
    return text


def cmd_train(args) -> int:
    """Train (or resume) a run; print where the checkpoint, metrics and curves went."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in fields}
    if not args.resume and ("variant" in given or "phi" in given):
        # A named variant or φ brings its own width and depth; the defaults are the quick
        # start's narrow, shallow B0.
        given = {"width": None, "depth": None, **given}
    sources = [flag for flag, used in (("--resume", args.resume),
                                       ("--from-run", args.from_run is not None),
                                       ("--recipe", args.recipe is not None)) if used]
    if len(sources) > 1:
        raise BadOptionError(f"{sources[0]} and {sources[1]} both choose the settings: "
                             f"drop {sources[1]}")
    if args.resume:
        if "out_dir" not in given:
            raise BadOptionError("--resume needs --out RUN_FOLDER")
        # The stored settings; any option given must agree (the Trainer says where not).
        config = dataclasses.replace(load_train_config(given["out_dir"]), **given)
    elif args.from_run is not None:
        # A new run: the stored run folder is not this run's, and neither is its data root,
        # which could name any folder for a download (a run copied from elsewhere): the data
        # come from --data-dir or $MINIEFFNET_DATA, as for a run started from scratch.
        config = dataclasses.replace(load_train_config(args.from_run),
                                     **{"out_dir": None, "data_dir": None, **given})
    elif args.recipe is not None:
        config = recipe_config(args.recipe, **given)
    else:
        config = TrainConfig(**given)
    trainer = Trainer(config, resume=args.resume, overwrite=args.overwrite,
                      progress=not args.no_progress)
    c, net = trainer.config, trainer.model.config
    print(f"{'resuming' if args.resume else 'training'} EfficientNet {net.name} (width "
          f"{net.width:g}, depth {net.depth:g}, {net.resolution} px): "
          f"{count_parameters(net):,} parameters, {count_flops(net) / 1e6:.1f} M multiply-adds")
    print(f"data: {trainer.train_set.name} {len(trainer.train_set)} / {trainer.test_set.name} "
          f"{len(trainer.test_set)} images; epochs: {c.epochs} x {trainer.steps_per_epoch} "
          f"steps of {c.batch_size}; {c.optimizer} lr {c.lr:g} {c.schedule}")
    print(f"run folder: {trainer.run_dir}")
    try:
        history = trainer.fit()
    except TrainingDiverged as e:
        print(f"minieffnet train: {e}", file=sys.stderr)
        return 1
    except TrainingInterrupted as e:
        print(f"\nminieffnet train: {e}", file=sys.stderr)
        return 130
    last = history[-1]
    tested = (f"test top-1 {_top1(last, 'test')}, top-5 {100 * last['test_top5']:.1f} % "
              if "test_top1" in last else "")  # none after a --no-final-test run
    print(f"done: {tested}after {last['epoch']} epochs ({last['elapsed_s']:.0f} s, "
          f"{last['images_per_s']:.0f} training images/s)")
    if "val_top1" in last:
        print(f"validation ({len(trainer.val_set)} held-out training images): top-1 "
              f"{_top1(last, 'val')}, top-5 {100 * last['val_top5']:.1f} %")
    print(f"checkpoint: {trainer.checkpoint_path}\nmetrics:    {trainer.metrics_path}\n"
          f"curves:     {trainer.curves_path}")
    print(f"next: minieffnet evaluate {trainer.run_dir}")
    return 0


def _load_for_cli(path: str):
    trained = load_trained_model(path)
    print(f"checkpoint: {trained.description}")
    return trained


def _test_set(config: TrainConfig, data_dir: str | None, **overrides) -> Dataset:
    """The test split of the data set of ``config`` (a checkpoint's, with ``overrides``),
    read from ``data_dir``, else ``$MINIEFFNET_DATA``, else the user cache, as ``train``
    finds it.

    Never from the ``data_dir`` the checkpoint stores: a checkpoint may come from anywhere,
    and a CIFAR loader downloads into the folder it is given when the data is not there, so
    a path from a file must not choose where anything is read or written. The stored folder
    is only named in a note, for the user to pass on if it is theirs.
    """
    if config.data_dir is not None and data_dir is None:
        print(f"note: not reading the checkpoint's data_dir ({printable(config.data_dir)}): "
              "a checkpoint does not choose where data is read or downloaded; point "
              "$MINIEFFNET_DATA (or evaluate's --data-dir) at it to read it there")
    _, test = load_datasets(dataclasses.replace(config, data_dir=data_dir, **overrides))
    return test


def _first_names(names: tuple[str, ...]) -> str:
    """``"cat, dog, ..."``: the first four class names, escaped, for a message."""
    return ", ".join(printable(n) for n in names[:4]) + (", ..." if len(names) > 4 else "")


def cmd_evaluate(args) -> int:
    """Loss, top-1 and top-5 of a checkpoint on a data set's test split (data found as in
    :func:`_test_set`)."""
    trained = _load_for_cli(args.checkpoint)
    base = trained.train_config
    if base is None and args.dataset is None:
        raise ValueError("this model checkpoint does not say what it was trained on: "
                         "pass --dataset")
    base = base or TrainConfig()
    dataset = args.dataset or base.dataset
    test = _test_set(base, args.data_dir, dataset=dataset,
                     test_size=args.test_size if args.test_size is not None
                     else base.test_size if dataset == base.dataset else None)
    numbered = tuple(str(i) for i in range(len(trained.class_names)))
    if trained.class_names not in (test.class_names, numbered):
        raise ValueError(f"the checkpoint's classes ({_first_names(trained.class_names)}) are "
                         f"not those of {printable(test.name)} ({_first_names(test.class_names)})")
    smoothing = trained.train_config.label_smoothing if trained.train_config else 0.0
    result = evaluate(trained.model, test, batch_size=args.batch_size,
                      label_smoothing=smoothing, mean=trained.mean, std=trained.std)
    print(f"data: {printable(test.name)}, {len(test)} images")
    print(f"loss {result['loss']:.4f} (label smoothing {smoothing:g})   top-1 "
          f"{100 * result['top1']:.2f} %   top-5 {100 * result['top5']:.2f} %")
    return 0


def cmd_predict(args) -> int:
    """Top-k classes with probabilities for each image file (class names escaped: one
    printed line per class, whatever the checkpoint holds)."""
    images = [read_image(path) for path in args.images]  # every file checked before any output
    trained = _load_for_cli(args.checkpoint)
    probs = predict(trained, images)
    k = min(args.top, probs.shape[1])
    for path, p in zip(args.images, probs):
        print(f"{path}:")
        for i in np.argsort(-p, kind="stable")[:k]:
            print(f"  {100 * p[i]:6.2f} %  {printable(trained.class_names[i])}")
    return 0


def _model_label(path: str) -> str:
    """A short name for a checkpoint in figures: its run folder's name, else its file name."""
    p = Path(path)
    return p.parent.name if p.name == CHECKPOINT_FILE else p.stem if p.suffix else p.name


def cmd_cam(args) -> int:
    """Class activation maps of one or more checkpoints, side by side (paper Figure 7);
    ``--test-images`` come from the first checkpoint's data set, found as in
    :func:`_test_set`."""
    if not args.images and args.test_images is None:
        raise ValueError("no images: pass --images FILE [FILE ...] or --test-images N")
    # Every file is checked before a model is loaded, like predict.
    images = [read_image(path) for path in args.images or ()]
    trained = [_load_for_cli(path) for path in args.checkpoints]
    if args.test_images is not None:
        first = trained[0]
        if args.test_images < 1:
            raise ValueError(f"--test-images must be at least 1, got {args.test_images}")
        if first.train_config is None:
            raise ValueError(f"{args.checkpoints[0]} is a bare model checkpoint without a "
                             "training config: its test set is unknown; pass --images")
        test = _test_set(first.train_config, None)
        sample = test.balanced_subset(args.test_images)  # deterministic, every class shown
        images = list(sample.images)
        image_titles = [f"true: {printable(sample.class_names[y])}" for y in sample.labels]
        names = [f"{printable(test.name)} image {i + 1} ({title})"
                 for i, title in enumerate(image_titles)]
    else:
        names = args.images
        image_titles = [Path(path).name for path in args.images]
    cams = [[] for _ in images]  # cams[image][model]
    titles = [[] for _ in images]
    predictions = [[] for _ in images]
    for path, t in zip(args.checkpoints, trained):
        x = prepare_images(t, images, op="cam")  # each model at its own resolution
        label = f"{_model_label(path)} ({t.model.config.resolution} px)"
        for i in range(len(images)):  # one at a time: big networks, big activations
            cam, logits = class_activation_maps(t.model, x[i:i + 1])
            probs = softmax(logits)[0]
            c = int(probs.argmax())  # the class the map is for (its logit is the largest)
            verdict = f"{printable(t.class_names[c])} {100 * probs[c]:.1f} %"
            cams[i].append(cam[0])
            titles[i].append(f"{label}\n{verdict}")
            predictions[i].append(f"  {label}: {verdict}")
    out = plot_cams(images, cams, titles, args.out, image_titles=image_titles)
    for name, lines in zip(names, predictions):
        print(f"{name}:")
        print("\n".join(lines))
    print(f"figure: {out}")
    return 0


# The study options a --protocol may set (TrainConfig fields). Left out with no protocol, each
# keeps TrainConfig's default but the depth: the base is a quarter of B0's, as in every
# protocol.
_STUDY_FIELDS = ("dataset", "preset", "width", "depth", "resolution", "train_size", "test_size")
_STUDY_BASE = {"depth": 0.25}


def _add_study_args(p: argparse.ArgumentParser, default_seeds: int, default_epochs: int) -> None:
    """The base network, the shared training recipe and the study folder of a scaling study.

    Options left out take the ``--protocol``'s value (:data:`~minieffnet.experiments.PROTOCOLS`),
    else the defaults shown.
    """
    quick = TrainConfig()
    d = {**{k: getattr(quick, k) for k in _STUDY_FIELDS}, **_STUDY_BASE}
    p.add_argument("--out", required=True, type=path_arg, metavar="STUDY",
                   help="study folder (re-running skips the trials already finished)")
    p.add_argument("--protocol", choices=tuple(PROTOCOLS),
                   help="a documented set of defaults: " + "; ".join(
                       f"{k}: {v.summary}" for k, v in PROTOCOLS.items()))
    p.add_argument("--dataset", type=dataset_arg, choices=DATASETS,
                   help=f"default {d['dataset']}")
    p.add_argument("--data-dir", type=path_arg, metavar="DIR",
                   help="CIFAR root (default $MINIEFFNET_DATA)")
    p.add_argument("--train-size", type=int, metavar="N",
                   help="use N training images, balanced over the classes (default all)")
    p.add_argument("--test-size", type=int, metavar="N",
                   help="use N test images, balanced over the classes (default all)")
    _network_option(p, "preset", f"default {d['preset']}")
    _network_option(p, "width", f"base width (default {d['width']})")
    _network_option(p, "depth", f"base depth (default {d['depth']})")
    _network_option(p, "resolution", "base resolution (default: the preset's)")
    p.add_argument("--epochs", type=int, nargs="+", metavar="E",
                   help=f"epochs per trial (default {default_epochs}); compare-scaling takes "
                        "several budgets (see --long-targets)")
    p.add_argument("--batch-size", type=int, default=quick.batch_size)
    p.add_argument("--lr", type=float, default=quick.lr, help="peak one-cycle learning rate")
    p.add_argument("--seeds", type=functools.partial(positive_int, most=MAX_SEEDS),
                   help=f"seeds per model: 0..N-1 (default {default_seeds}, at most "
                        f"{MAX_SEEDS:,})")
    p.add_argument("--jobs", type=positive_int, default=1, help="trials trained in parallel "
                   "processes, each with cores/jobs threads")
    p.add_argument("--dask", metavar="ADDRESS", help="run the trials on the Dask cluster at "
                   "ADDRESS instead (needs the 'cluster' extra and a shared file system)")
    p.add_argument("--report", action="store_true", help="train nothing: write the tables "
                   "and figures from the trials already finished (a study in progress)")
    p.set_defaults(default_seeds=default_seeds, default_epochs=default_epochs)


def _add_study_commands(sub) -> None:
    """The ``compare-scaling`` and ``grid-search`` sub-commands: every option of both."""
    cs = sub.add_parser("compare-scaling", help="train depth-, width-, resolution- and "
                        "compound-scaled networks at equal FLOPs (paper Figure 8)")
    cs.set_defaults(func=cmd_compare_scaling)
    _add_study_args(cs, default_seeds=3, default_epochs=4)
    cs.add_argument("--targets", type=float, nargs="+",
                    help="FLOPs multipliers (default " + " ".join(f"{t:g}" for t in TARGETS)
                         + ", or the --protocol's)")
    cs.add_argument("--long-targets", type=float, nargs="+",
                    help="targets also trained at the later --epochs budgets (default "
                         + " ".join(f"{t:g}" for t in LONG_TARGETS) + ": the base and the 2x "
                         "models, or the --protocol's)")
    cs.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    cs.add_argument("--time", action="store_true", help="first time a training step of every "
                    "finished model, one at a time with the threads a trial has (cores/jobs), "
                    "into timings.csv: the tables then give each model's training time on an "
                    "idle machine and accuracy_vs_time.png (run it on an idle machine)")
    for flag, what, default in zip(("--alpha", "--beta", "--gamma"),
                                   ("depth", "width", "resolution"), PAPER_COEFFICIENTS):
        cs.add_argument(flag, type=float, default=default,
                        help=f"compound {what} base (default {default})")
    gs = sub.add_parser("grid-search", help="rank (alpha, beta, gamma) with "
                        "alpha*beta^2*gamma^2 ~ 2 at phi=1 (paper section 3.3)")
    gs.set_defaults(func=cmd_grid_search)
    _add_study_args(gs, default_seeds=2, default_epochs=2)
    gs.add_argument("--step", type=float, help=f"grid step (default {GRID_STEP}, or the "
                    "--protocol's)")
    gs.add_argument("--tol", type=float, default=GRID_TOLERANCE,
                    help=f"allowed |alpha*beta^2*gamma^2 - 2| (default {GRID_TOLERANCE})")
    gs.add_argument("--equal-cost", type=float, metavar="TOL", help="re-solve φ per candidate "
                    "so every network costs 2^phi times the base's FLOPs within ±TOL (e.g. "
                    "0.02); default: the networks as the coefficients scale them (or the "
                    "--protocol's)")
    gs.add_argument("--phi", type=float, default=1.0, help="compound coefficient (default 1: "
                    "Step 1; 2 tests whether a φ = 1 choice stays best, Step 2)")
    gs.add_argument("--candidates", nargs="+", metavar="A,B,G", help="train these (α, β, γ) "
                    "instead of the grid (e.g. the leaders of a φ = 1 search at --phi 2)")
    gs.add_argument("--rounds", type=int, help="successive halving: round r trains the "
                    "better half of round r-1 for twice the epochs (default 1, or the "
                    "--protocol's)")
    bc = sub.add_parser("budget-curve", help="train the base network at several epoch "
                        "budgets and input resolutions (choosing a study's epochs)")
    bc.set_defaults(func=cmd_budget_curve)
    _add_study_args(bc, default_seeds=1, default_epochs=4)
    bc.add_argument("--resolutions", type=int, nargs="+", metavar="R",
                    help="input sides to train the base at (default: the base's, or the "
                         "--protocol's)")
    wb = sub.add_parser("width-per-baseline", help="scale the width of baselines with "
                        "different depth and resolution (paper Figure 4)")
    wb.set_defaults(func=cmd_width_per_baseline)
    _add_study_args(wb, default_seeds=1, default_epochs=4)
    wb.add_argument("--baselines", nargs="+", metavar="D,R",
                    default=[f"{d:g},{r:g}" for d, r in FIGURE4_BASELINES],
                    help="(depth, resolution) multipliers of each baseline (default "
                         + " ".join(f"{d:g},{r:g}" for d, r in FIGURE4_BASELINES) + ")")
    wb.add_argument("--widths", type=float, nargs="+", default=list(FIGURE4_WIDTHS),
                    help="width multipliers per baseline (default "
                         + " ".join(f"{w:g}" for w in FIGURE4_WIDTHS) + ")")


def _study_settings(args) -> tuple[TrainConfig, tuple[int, ...], int, StudyProtocol | None]:
    """``(base TrainConfig, epoch budgets, seeds, protocol)`` from the options, each option
    left out taking the ``--protocol``'s value, else its default."""
    protocol = PROTOCOLS[args.protocol] if args.protocol else None
    chosen = {**_STUDY_BASE, **(protocol.base if protocol else {})}
    chosen.update({k: getattr(args, k) for k in _STUDY_FIELDS if getattr(args, k) is not None})
    if protocol is None:
        defaults = {"budgets": (args.default_epochs,), "seeds": args.default_seeds}
    else:
        defaults = {"budgets": protocol.budgets, "seeds": protocol.seeds,
                    **protocol.others.get(args.command, {})}
    if "dataset" in chosen and chosen["dataset"] is None:
        raise BadOptionError(f"--protocol {args.protocol} needs --dataset folder:PATH (or "
                             "npz:PATH): it names no data set of its own")
    budgets = tuple(args.epochs or defaults["budgets"])
    seeds = args.seeds or defaults["seeds"]
    base = TrainConfig(**chosen, data_dir=args.data_dir, epochs=budgets[0],
                       batch_size=args.batch_size, lr=args.lr)
    return base, budgets, seeds, protocol


def _study_executor(args):
    """The Dask executor of ``--dask``, else None (local processes)."""
    if args.dask is None:
        return None
    return dask_executor(args.dask)


def cmd_compare_scaling(args) -> int:
    """Depth, width, resolution and compound scaling at equal FLOPs (paper Figure 8)."""
    base, budgets, seeds, protocol = _study_settings(args)
    targets = args.targets or (protocol.targets if protocol else TARGETS)
    long_targets = args.long_targets or (protocol.long_targets if protocol else LONG_TARGETS)
    if args.time:
        time_study(args.out, threads=max(1, (os.cpu_count() or 1) // args.jobs))
    results = compare_scaling(base, args.out, targets=targets, seeds=range(seeds),
                              strategies=args.strategies,
                              coefficients=(args.alpha, args.beta, args.gamma),
                              jobs=args.jobs, executor=_study_executor(args), budgets=budgets,
                              long_targets=long_targets, report_only=args.report)
    out = Path(args.out)
    print(f"\n{(out / 'results.md').read_text(encoding='utf-8')}")
    print(f"{(out / 'differences.md').read_text(encoding='utf-8')}")
    print(f"{len(results)} models: {out / 'results.csv'}, {out / 'results.md'}, "
          f"{out / 'differences.md'}, {out / 'accuracy_vs_flops.png'}, "
          f"{out / 'learning_curves.png'}")
    return 0


def _print_study(out_dir, *files: str) -> int:
    """Print a study's results.md and the paths of ``files`` in it; the exit status 0."""
    out = Path(out_dir)
    print(f"\n{(out / 'results.md').read_text(encoding='utf-8')}")
    print("results: " + ", ".join(str(out / name) for name in files))
    return 0


def cmd_budget_curve(args) -> int:
    """The base network's accuracy against epochs and input resolution."""
    base, budgets, seeds, protocol = _study_settings(args)
    curve = protocol.others.get("budget-curve", {}) if protocol else {}
    budget_curve(base, args.out, budgets, args.resolutions or curve.get("resolutions"),
                 seeds=range(seeds), jobs=args.jobs, executor=_study_executor(args),
                 report_only=args.report)
    return _print_study(args.out, "results.csv", "results.md", "budget_curve.png")


def cmd_grid_search(args) -> int:
    """Grid search for α, β, γ at φ = 1 (paper §3.3 Step 1)."""
    base, budgets, seeds, protocol = _study_settings(args)
    if len(budgets) > 1:
        raise BadOptionError("grid-search takes one --epochs value (the first round's "
                             "budget; --rounds doubles it per round)")
    grid = protocol.others.get("grid-search", {}) if protocol else {}
    step = args.step if args.step is not None else grid.get("step", GRID_STEP)
    rounds = args.rounds if args.rounds is not None else grid.get("rounds", 1)
    equal_cost = args.equal_cost if args.equal_cost is not None else grid.get("equal_cost")
    if args.candidates:
        candidates = [_triple(text) for text in args.candidates]
    else:
        candidates = grid_candidates(step, args.tol)
        print(f"{len(candidates)} candidates with |α·β²·γ² - 2| <= {args.tol:g} on a grid of "
              f"{step:g}")
        if PAPER_COEFFICIENTS not in candidates:  # so that the ranking says where it stands
            candidates.append(PAPER_COEFFICIENTS)
            print(f"and the paper's (α, β, γ) = {PAPER_COEFFICIENTS}, which the grid misses")
    grid_search(base, args.out, candidates, seeds=range(seeds), jobs=args.jobs,
                executor=_study_executor(args), rounds=rounds, phi=args.phi,
                equal_cost=equal_cost, report_only=args.report)
    return _print_study(args.out, "results.csv", "results.md")


def _triple(text: str) -> tuple[float, float, float]:
    """``"1.2,1.1,1.15"`` -> ``(1.2, 1.1, 1.15)``; BadOptionError naming the option otherwise."""
    try:
        a, b, g = (float(v) for v in text.split(","))
    except ValueError:
        raise BadOptionError(f"--candidates: expected ALPHA,BETA,GAMMA such as 1.2,1.1,1.15, "
                             f"got {text!r}") from None
    return a, b, g


def _pair(text: str) -> tuple[float, float]:
    """``"2,1.3"`` -> ``(2.0, 1.3)``; ValueError naming the option otherwise."""
    try:
        d, r = (float(v) for v in text.split(","))
    except ValueError:
        raise BadOptionError(f"--baselines: expected DEPTH,RESOLUTION multipliers such as "
                             f"2,1.3, got {text!r}") from None
    return d, r


def cmd_width_per_baseline(args) -> int:
    """Width scaling of baselines with other depths and resolutions (paper Figure 4)."""
    base, budgets, seeds, _ = _study_settings(args)
    if len(budgets) > 1:
        raise BadOptionError("width-per-baseline takes one --epochs value")
    width_per_baseline(base, args.out, [_pair(b) for b in args.baselines], args.widths,
                       seeds=range(seeds), jobs=args.jobs, executor=_study_executor(args),
                       report_only=args.report)
    return _print_study(args.out, "results.csv", "width_per_baseline.png")


def cmd_check_ops(args) -> int:
    """Gradient-check every registered op in float64 and print a table."""
    return print_op_table()


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line errors: ``minieffnet predict: error: argument
    --top: ...`` and exit status 2, without the usage block (``--help`` shows that)."""

    def error(self, message: str):
        # _one_line: a value typed with a newline or carriage return must not split the line
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``minieffnet`` parser; each sub-command sets ``func``, its ``cmd_*`` function."""
    parser = _Parser(prog="minieffnet",
                     description="EfficientNet from scratch in NumPy and Numba.")
    debug = "show the Python traceback of an error instead of one line"
    parser.add_argument("--debug", action="store_true", help=debug)
    sub = parser.add_subparsers(dest="command", required=True)
    ops = sub.add_parser("check-ops", help="gradient-check every op in float64 and print a table")
    ops.set_defaults(func=cmd_check_ops)
    info = sub.add_parser("info", help="stage table, parameters and FLOPs of a network")
    info.set_defaults(func=cmd_info)
    _add_model_args(info)
    train = sub.add_parser("train", help="train a network (no options: a few-minute demo on "
                           "the built-in synthetic data)")
    train.set_defaults(func=cmd_train)
    _add_train_args(train)
    ev = sub.add_parser("evaluate", help="loss, top-1 and top-5 of a trained network")
    ev.set_defaults(func=cmd_evaluate)
    ev.add_argument("checkpoint", type=path_arg, help="a run folder or a checkpoint .npz")
    ev.add_argument("--dataset", type=dataset_arg, choices=DATASETS,
                    help="default: the one it was trained on")
    ev.add_argument("--data-dir", type=path_arg,
                    help="CIFAR root (default $MINIEFFNET_DATA, else the user cache; never the "
                         "folder the checkpoint names)")
    ev.add_argument("--test-size", type=positive_int,
                    help="use N test images, balanced over the classes")
    ev.add_argument("--batch-size", type=positive_int, default=256)
    pr = sub.add_parser("predict", help="classify image files (PNG, RGB or RGBA, any size)")
    pr.set_defaults(func=cmd_predict)
    pr.add_argument("checkpoint", type=path_arg, help="a run folder or a checkpoint .npz")
    pr.add_argument("images", nargs="+", type=path_arg, help="image files")
    pr.add_argument("--top", type=positive_int, default=5,
                    help="classes to show per image (default 5)")
    cam = sub.add_parser("cam", help="class activation maps of one or more checkpoints, "
                         "side by side (paper Figure 7)")
    cam.set_defaults(func=cmd_cam)
    cam.add_argument("checkpoints", nargs="+", type=path_arg, metavar="CHECKPOINT",
                     help="run folders or checkpoint .npz files (one column each)")
    source = cam.add_mutually_exclusive_group()  # neither: cmd_cam says so in one line
    source.add_argument("--images", nargs="+", type=path_arg, metavar="FILE",
                        help="image files (PNG, RGB or RGBA, any size)")
    source.add_argument("--test-images", type=int, metavar="N", help="N class-balanced "
                        "images from the first checkpoint's test set")
    cam.add_argument("--out", default=CAM_FILE, type=figure_arg, help="figure to write "
                     f"(default {CAM_FILE}; a folder: {CAM_FILE} in it; no suffix: .png "
                     "added)")
    _add_study_commands(sub)
    for command in sub.choices.values():  # also after the sub-command, where users type it
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help=debug)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``minieffnet`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Every failure is one line on stderr, never a traceback (``--debug`` re-raises instead):
    bad arguments, files or data (ValueError, including every
    :class:`~minieffnet.errors.MinieffnetError`; OSError; MemoryError; FloatingPointError,
    weights whose logits overflow) exit 2; anything else is a bug, reported as an internal
    error with exit status 3.
    """
    args = build_parser().parse_args(argv)
    try:
        with _announce_compiling():
            return args.func(args)
    except Exception as e:
        if args.debug:
            raise
        known = isinstance(e, (ValueError, OSError, MemoryError, FloatingPointError))
        what = "error" if known else f"internal error ({type(e).__name__})"
        hint = "" if known else "; please report it, with the traceback of --debug"
        print(f"minieffnet {args.command}: {what}: {_one_line(e)}{hint}", file=sys.stderr)
        return 2 if known else 3
    except KeyboardInterrupt:  # outside training, which handles its own Ctrl-C
        if args.debug:
            raise
        print(f"\nminieffnet {args.command}: interrupted", file=sys.stderr)
        return 130


class _CompileNotice(numba_event.Listener):
    """Prints one line the first time it hears that Numba starts compiling a function."""

    def __init__(self):
        self.announced = False

    def on_start(self, event) -> None:
        if not self.announced:
            self.announced = True
            print("minieffnet: compiling kernels, first run only", file=sys.stderr, flush=True)

    def on_end(self, event) -> None:
        pass


_COMPILE_NOTICE = _CompileNotice()  # one for the process: the line comes once


def _announce_compiling() -> contextlib.AbstractContextManager:
    """While a command runs, say so (once) when Numba starts compiling.

    Numba's ``numba:compile`` event fires only for what its on-disk cache lacks: with a warm
    cache nothing is printed, with an empty one (the first run after installing or changing
    minieffnet) the line comes just before the first step's long wait. Compiling the kernels
    ahead, in parallel worker processes, was measured against this and dropped: on an idle
    2-core machine it took about 5 s off a 14 s cold first step, but its workers add a third
    more CPU work (each imports minieffnet and compiles by example before the caller loads
    their results), so on a shared machine it made the cold start slower; and it needed a
    hand-balanced list of workloads to keep in step with every kernel and a probe of Numba's
    private cache files.
    """
    return numba_event.install_listener("numba:compile", _COMPILE_NOTICE)


def _one_line(e: BaseException | str) -> str:
    """A message (or an exception's) on one line (a MemoryError may carry none), with the
    control characters left in it escaped (:func:`~minieffnet.safe_text.printable`): a
    message may quote a path or a name read from a file."""
    text = printable(" ".join(str(e).split()))
    return text or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
