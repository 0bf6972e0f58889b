"""Training: the loop (:class:`Trainer`), evaluation, exact resumption, metrics and progress.

    >>> from minieffnet.train import TrainConfig, Trainer
    >>> trainer = Trainer(TrainConfig(epochs=3, out_dir="runs/demo"))
    >>> history = trainer.fit()          # one dict per epoch, as in metrics.jsonl

What a run is (:class:`TrainConfig`, the data, optimiser and schedule it builds) lives in
:mod:`minieffnet.train_config` (``TrainConfig`` is importable from here too); how its
checkpoint is written and read, in :mod:`minieffnet.checkpoint`; using the trained network
(loading it, predicting), in :mod:`minieffnet.inference`.

A run lives in one folder (``out_dir``; its files and which folder a run may take:
:mod:`minieffnet.run_dir`): ``config.json``, ``checkpoint.npz`` (everything needed to
continue, below, replaced atomically), ``metrics.jsonl`` (one JSON object per finished epoch,
keys in :meth:`Trainer.fit`) and ``curves.png`` (train vs test, :mod:`minieffnet.viz`).

Each step: forward in training mode, :func:`~minieffnet.ops.softmax_cross_entropy` with label
smoothing, backward, ``optimizer.lr = schedule(step)``, ``optimizer.step()``, then the weight
EMA (if enabled). Each epoch ends with an evaluation on the test set in eval mode (with the EMA
weights when enabled), a row in ``metrics.jsonl``, a checkpoint and a fresh ``curves.png``.

The short-run recipe options of :class:`TrainConfig` change this as follows. With
``val_size`` the epochs are evaluated on the held-out validation split (``val_*`` columns)
and the test set only after the last epoch (never, with ``final_test=False``: a tuning run);
with ``eval_each_epoch=False`` only the last epoch is evaluated; with ``tta`` the last
evaluation also reports the test-time-augmented numbers (``*_tta_*`` columns,
:mod:`minieffnet.tta`). With ``progressive_from`` each epoch starts by setting the training
loader's resolution and the model's dropout and stochastic-depth rates to its stage
(:mod:`minieffnet.progressive`); evaluation is always at the network's resolution. With
``time_budget`` a new run first measures its speed and fits ``epochs`` to the budget
(:mod:`minieffnet.budget`); ``config.json`` records the fitted count.

Exact resumption
----------------
The checkpoint (its layout: :mod:`minieffnet.checkpoint`) holds a
:class:`~minieffnet.training_state.TrainingState`: the model's parameters and BatchNorm
statistics, the optimiser's and the EMA's state, the position (epoch, batch within
the epoch, global step), the epoch's running totals, and both random streams: ``model.rng``
(dropout, stochastic depth) and the training loader's Generator (shuffle, augmentation) *as it
was when the epoch began*. Resuming restores all of it; to stand mid-epoch it re-draws the
epoch's shuffle and re-makes the batches already trained on (a millisecond or so each, no
training), which replays every random draw in the original order. The schedule is a pure
function of the step, and the progressive stage a pure function of the epoch; a time-budgeted
run resumes with the epochs it fitted (no new measurement). So a run interrupted at any step
boundary and resumed, in a new process, ends with the same weights, bit for bit, as one that
never stopped (same machine and thread count: BLAS results may differ between machines).

Ctrl-C
------
While :meth:`Trainer.fit` runs (in the main thread) the first Ctrl-C does not stop a step
half-way: the step finishes, the checkpoint is written at that step and
:class:`TrainingInterrupted` (a ``KeyboardInterrupt``) is raised with the command that resumes.
During evaluation the first Ctrl-C stops at once (evaluation changes no state). A second Ctrl-C,
or a ``KeyboardInterrupt`` raised by other code inside a step, stops immediately *without*
saving, because the weights may be half-updated: the last checkpoint stays as it was.

Failures
--------
A non-finite activation, logit or loss raises :class:`TrainingDiverged` naming the epoch and
step (the CLI prints it and exits with status 1); nothing is saved, so the checkpoint still
holds the last good state (no checkpoint with non-finite weights is ever written). A folder
that already holds a run is refused unless ``resume=True`` (the configs must agree, except
``out_dir`` and ``data_dir``, and the data must be what the run started with: class names,
image counts, normalisation and the arrays themselves, :mod:`minieffnet.data_fingerprint`)
or ``overwrite=True``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from .budget import Timing, fit_to_budget, measure, seconds_left
from .checkpoint import (CHECKPOINT_FILE, checkpoint_field, config_differences,
                         read_training_checkpoint, save_training_checkpoint, training_model_config,
                         training_state)
from .data import AugmentConfig, BatchLoader, Dataset, dataset_label
from .data_fingerprint import DataFingerprint, data_fingerprint
from .errors import BadFileError
from .model import EfficientNet, efficientnet
from .ops._checks import NonFiniteError
from .ops.loss import softmax_cross_entropy
from .optim import EMA
from .progressive import apply_regularization
from .run_dir import (CURVES_FILE, METRICS_FILE, check_run_dir, drop_temporaries, new_run_dir,
                      start_run_dir, trim_metrics, with_fitted_epochs)
from .train_config import (TrainConfig, build_optimizer, build_schedule, load_splits,
                           train_config_differences)
from .training_state import TrainingState
from .tta import TTA_VIEWS, tta_logits
from .viz import plot_training_curves, read_metrics


class TrainingDiverged(RuntimeError):
    """The loss or the logits became NaN or infinite; ``epoch`` (1-based) and ``step`` say where."""

    def __init__(self, message: str, epoch: int, step: int):
        super().__init__(message)
        self.epoch, self.step = epoch, step

    def __reduce__(self):  # pickled back from a study's worker process (``--jobs``)
        return type(self), (str(self), self.epoch, self.step)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :meth:`Trainer.fit`. ``saved`` tells whether the checkpoint holds the
    state at ``step`` (else it holds an earlier one); the message says how to resume."""

    def __init__(self, message: str, epoch: int, step: int, saved: bool):
        super().__init__(message)
        self.epoch, self.step, self.saved = epoch, step, saved

    def __reduce__(self):  # the default re-calls __init__ with the message alone, which fails
        return type(self), (str(self), self.epoch, self.step, self.saved)


def evaluate(model: EfficientNet, dataset: Dataset, *, batch_size: int = 256,
             label_smoothing: float = 0.0, mean=None, std=None,
             tta: int = 0) -> dict[str, float]:
    """Loss, top-1 and top-5 accuracy of ``model`` on ``dataset``, in eval mode, in batches.

    Images are normalised with ``mean`` / ``std`` (default ``dataset.normalization()``, the
    training statistics for the built-in sets) and resized to ``model.config.resolution``.
    ``loss`` is the mean cross-entropy against targets smoothed by ``label_smoothing`` (pass
    the training value to compare with the training loss). Top-5 is top-``min(5, classes)``.
    tta: a test-time augmentation level (:func:`~minieffnet.tta.tta_logits`); above 0 the
    result also holds ``tta_loss``, ``tta_top1`` and ``tta_top5``, the same measures of the
    averaged logits (the plain numbers are unchanged and reuse the plain forward pass).
    The model is left in the mode it was in. Raises FloatingPointError if the logits are not
    finite, ValueError if the class counts differ.
    """
    if dataset.num_classes != model.config.num_classes:
        raise ValueError(f"{dataset.name} has {dataset.num_classes} classes but the model "
                         f"predicts {model.config.num_classes}")
    loader = BatchLoader(dataset, batch_size, np.random.default_rng(0), shuffle=False,
                         resolution=model.config.resolution, mean=mean, std=std)
    k = min(5, model.config.num_classes)
    prefixes = ("", "tta_") if tta else ("",)
    sums = {f"{prefix}{name}": 0.0 for prefix in prefixes for name in ("loss", "top1", "top5")}
    was_training = model.training
    model.eval()
    try:
        for x, y in loader:
            logits = _finite_forward(model, x)
            outputs = {"": logits}
            if tta:
                outputs["tta_"] = tta_logits(lambda v: _finite_forward(model, v), x, tta,
                                             plain=logits)
            for prefix, out in outputs.items():
                loss, _ = softmax_cross_entropy(out, y, label_smoothing)
                best = np.argpartition(-out, k - 1, axis=1)[:, :k]
                sums[f"{prefix}loss"] += loss * len(y)
                sums[f"{prefix}top5"] += float((best == y[:, None]).any(axis=1).sum())
                sums[f"{prefix}top1"] += float((out.argmax(axis=1) == y).sum())
    finally:
        model.train(was_training)
    return {key: total / len(dataset) for key, total in sums.items()}


def _finite_forward(model: EfficientNet, x: np.ndarray) -> np.ndarray:
    """``model(x)``, raising FloatingPointError if an activation or a logit is not finite.

    The ops refuse non-finite inputs with :class:`NonFiniteError`; that is how overflowing
    activations show up.
    """
    try:
        logits = model(x)
    except NonFiniteError as e:
        raise FloatingPointError(f"the activations are not finite ({e})") from e
    if not np.isfinite(logits).all():
        raise FloatingPointError("the logits are not finite")
    return logits


# --- the trainer -----------------------------------------------------------------------------
def _fresh_totals() -> dict[str, float]:
    """Running sums of the epoch in progress (kept in the checkpoint for a mid-epoch resume)."""
    return {"loss_sum": 0.0, "correct": 0.0, "seen": 0.0, "train_time_s": 0.0}


class Trainer:
    """Trains one run (a :class:`TrainConfig`) in its folder; see the module docstring.

    resume: continue the run in ``config.out_dir`` from its checkpoint (its config must equal
    ``config`` apart from ``out_dir`` / ``data_dir``, and its data the data it started with).
    overwrite: replace whatever run the folder holds. Without either, a folder that holds a
    run is refused (ValueError).
    progress: show a tqdm bar (loss, top-1, lr, images/s, ETA). verbose: print a line per
    epoch.
    on_step: called as ``on_step(trainer)`` after every completed step (``trainer.step``
    counts them); raising ``KeyboardInterrupt`` there acts like Ctrl-C.

    Attributes: ``config`` (``out_dir`` resolved; with a time budget, ``epochs`` fitted),
    ``run_dir``, ``model``, ``optimizer``, ``ema`` (or None), ``schedule``, ``loader`` (the
    training BatchLoader), ``train_set``, ``val_set`` (None without ``val_size``),
    ``test_set``, ``steps_per_epoch``, ``predicted_s`` (a new time-budgeted run's predicted
    wall time, else None); position ``epoch`` (completed epochs), ``batch`` (batches done in
    the current epoch), ``step`` (optimiser steps done); ``data_fingerprint`` (what the run
    trains on, :class:`~minieffnet.data_fingerprint.DataFingerprint`).
    """

    def __init__(self, config: TrainConfig = TrainConfig(), *, resume: bool = False,
                 overwrite: bool = False, progress: bool = True, verbose: bool = True,
                 on_step: Callable[["Trainer"], None] | None = None):
        started = time.perf_counter()  # a time budget counts from here
        if resume and overwrite:
            raise ValueError("choose resume or overwrite, not both")
        if config.out_dir is None:
            if resume:
                raise ValueError("resume needs out_dir: the folder of the run to continue")
            config = dataclasses.replace(config, out_dir=str(new_run_dir(
                dataset_label(config.dataset))))
        self.run_dir = Path(config.out_dir)
        self.config = with_fitted_epochs(config, self.run_dir) if resume else config
        config = self.config
        self.progress, self.verbose = progress, verbose
        self.on_step = on_step
        self._overwrite = overwrite
        check_run_dir(self.run_dir, config, resume=resume, overwrite=overwrite)
        drop_temporaries(self.run_dir)  # the folder is this run's now

        self.train_set, self.val_set, self.test_set = load_splits(config)
        if self.test_set.class_names != self.train_set.class_names:
            raise ValueError(f"{self.test_set.name} and {self.train_set.name} name different "
                             "classes")
        self.model = efficientnet(config.variant, self.train_set.num_classes,
                                  preset=config.preset, seed=config.seed,
                                  zero_init_residual=config.zero_init_residual,
                                  **config.model_overrides())
        # Both splits are normalised with the training statistics (stored in the checkpoint
        # for evaluate / predict).
        self.mean, self.std = self.train_set.normalization()
        self.data_fingerprint = data_fingerprint(
            {"train": self.train_set, "val": self.val_set, "test": self.test_set},
            self.mean, self.std)
        augment = AugmentConfig(crop_padding=4 if config.augment else 0, flip=config.augment,
                                cutout=config.cutout)
        # drop_last: a final batch of a few images would give BatchNorm noisy statistics.
        self.loader = BatchLoader(self.train_set, config.batch_size,
                                  np.random.default_rng([config.seed, 1]), augment=augment,
                                  resolution=self.model.config.resolution, drop_last=True,
                                  mean=self.mean, std=self.std)
        self.steps_per_epoch = len(self.loader)
        if self.steps_per_epoch == 0:
            raise ValueError(f"batch_size {config.batch_size} is larger than the training set "
                             f"({len(self.train_set)} images)")
        self.schedule = build_schedule(config, self.steps_per_epoch)
        self.optimizer = build_optimizer(config, self.model.parameters())
        # The EMA averages BatchNorm's running statistics too, as the paper's code and timm do.
        self.ema = (EMA(self.model.parameters(), config.ema, warmup=True,
                        buffers=dict(self.model.named_buffers()))
                    if config.ema is not None else None)

        self.epoch = self.batch = self.step = 0
        self._totals = _fresh_totals()
        self._elapsed_s = 0.0  # wall time of the run, all sessions, up to the last _tick()
        self._clock = time.perf_counter()
        self._loader_epoch_state = self.loader.rng.bit_generator.state
        self._started = resume
        self._in_step = False
        self._stop_requested = False
        self._interruptible = False
        self.predicted_s = None
        if resume:
            self._load_checkpoint()
        elif config.time_budget is not None:
            self._fit_to_time_budget(started)

    # --- paths -------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_FILE

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / METRICS_FILE

    @property
    def curves_path(self) -> Path:
        return self.run_dir / CURVES_FILE

    def _resume_hint(self) -> str:
        return f"minieffnet train --resume --out {self.run_dir}"

    # --- training ----------------------------------------------------------------------------
    def fit(self) -> list[dict[str, Any]]:
        """Train until ``config.epochs`` epochs are done; returns every epoch's metrics.

        Each epoch appends to ``metrics.jsonl`` an object with ``epoch`` (1-based), ``step``
        (optimiser steps so far), ``lr`` (of the epoch's last step), ``train_loss`` /
        ``train_top1`` (over the epoch's augmented batches, in training mode),
        ``test_loss`` / ``test_top1`` / ``test_top5`` (:func:`evaluate`, with the EMA weights
        when enabled, loss with the training label smoothing), ``images_per_s`` (training
        only), ``epoch_time_s`` and ``elapsed_s`` (the run's wall time over all sessions).

        Raises :class:`TrainingDiverged` or :class:`TrainingInterrupted` (see the module
        docstring).
        """
        if not self._started:
            self._start_run()
        self._stop_requested = False
        self._clock = time.perf_counter()
        with _deferred_sigint(self):
            try:
                while self.epoch < self.config.epochs:
                    self._run_epoch()
            except KeyboardInterrupt:
                raise self._interrupted() from None
        return self.history()

    def history(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.jsonl`` so far."""
        return read_metrics(self.metrics_path) if self.metrics_path.exists() else []

    def _start_run(self) -> None:
        """Claim the folder: config.json, an empty metrics file and a step-0 checkpoint (so
        that an interruption at any later point has a checkpoint to fall back on)."""
        start_run_dir(self.run_dir, self.config, overwrite=self._overwrite)
        self.save_checkpoint()
        self._started = True

    def _run_epoch(self) -> None:
        epoch_number = self.epoch + 1
        stage = self.config.stage(self.epoch)
        self.loader.resolution = stage.resolution
        apply_regularization(self.model, stage.regularization)
        batches = iter(self.loader)
        # Resuming mid-epoch: re-make the batches already trained on, which replays their
        # random draws, so the loader's Generator stands where the interrupted run left it.
        for _ in range(self.batch):
            next(batches)
        bs = self.config.batch_size
        bar = tqdm(total=self.steps_per_epoch * bs, initial=self.batch * bs, unit="img",
                   desc=f"epoch {epoch_number}/{self.config.epochs}", disable=not self.progress,
                   dynamic_ncols=True, leave=False)
        with bar:
            last = time.perf_counter()
            for x, y in batches:
                self._train_step(x, y)
                now = time.perf_counter()  # images/s counts batch making as well as the step
                self._totals["train_time_s"] += now - last
                last = now
                t = self._totals
                bar.set_postfix(loss=f"{t['loss_sum'] / t['seen']:.3f}",
                                top1=f"{t['correct'] / t['seen']:.3f}",
                                lr=f"{self.optimizer.lr:.3g}", refresh=False)
                bar.update(len(y))
                if self.on_step is not None:
                    self.on_step(self)
                if self._stop_requested:
                    raise KeyboardInterrupt

        self._interruptible = True  # evaluation changes no state: Ctrl-C may stop it at once
        evaluated, eval_time_s = {}, 0.0
        try:
            for prefix, dataset, tta in self._evaluation_plan(epoch_number, self.config.epochs):
                result = self._evaluate_for_metrics(epoch_number, dataset, tta)
                eval_time_s += result.pop("time_s")
                evaluated.update((f"{prefix}_{k}", v) for k, v in result.items())
        finally:
            self._interruptible = False
        t = self._totals
        self._tick()
        row = {
            "epoch": epoch_number, "step": self.step, "lr": self.optimizer.lr,
            "train_loss": t["loss_sum"] / t["seen"], "train_top1": t["correct"] / t["seen"],
            **evaluated,
            "images_per_s": t["seen"] / max(t["train_time_s"], 1e-9),
            "epoch_time_s": t["train_time_s"] + eval_time_s, "elapsed_s": self._elapsed_s,
        }
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        self.epoch, self.batch = self.epoch + 1, 0
        self._totals = _fresh_totals()
        self._loader_epoch_state = self.loader.rng.bit_generator.state
        self.save_checkpoint()
        plot_training_curves(self.metrics_path, self.curves_path)
        if self.verbose:
            groups = dict.fromkeys(key.rsplit("_", 1)[0] for key in evaluated)  # test, test_tta
            scores = "".join(f" | {g.replace('_', ' ')} loss {row[g + '_loss']:.3f} top-1 "
                             f"{row[g + '_top1']:.3f} top-5 {row[g + '_top5']:.3f}"
                             for g in groups)
            tqdm.write(f"epoch {epoch_number}/{self.config.epochs}: train loss "
                       f"{row['train_loss']:.3f} top-1 {row['train_top1']:.3f}{scores} | "
                       f"{row['images_per_s']:.0f} img/s, {row['epoch_time_s']:.0f} s")
        if self._stop_requested:
            raise KeyboardInterrupt

    def _tick(self) -> None:
        """Add the wall time since the last tick to the run's elapsed time."""
        now = time.perf_counter()
        self._elapsed_s += now - self._clock
        self._clock = now

    def _train_step(self, x: np.ndarray, y: np.ndarray) -> None:
        """One optimiser step; the position and totals advance only once it is complete."""
        self._in_step = True
        loss, logits = self._optimizer_step(x, y)
        if self.ema is not None:
            self.ema.update()
        t = self._totals
        t["loss_sum"] += loss * len(y)
        t["correct"] += float((logits.argmax(axis=1) == y).sum())
        t["seen"] += len(y)
        self.step += 1
        self.batch += 1
        self._in_step = False

    def _optimizer_step(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Forward in training mode, the loss, backward and the optimiser's update at
        ``schedule(step)``: ``(loss, logits)``. Raises :class:`TrainingDiverged`."""
        try:
            logits = _finite_forward(self.model, x)
        except FloatingPointError as e:
            raise self._diverged(str(e)) from None
        loss, dlogits = softmax_cross_entropy(logits, y, self.config.label_smoothing)
        if not math.isfinite(loss):
            raise self._diverged("the loss is not finite")
        self.model.backward(dlogits)
        self.optimizer.lr = self.schedule(self.step)
        self.optimizer.step()
        return loss, logits

    def _diverged(self, what: str) -> TrainingDiverged:
        epoch, step = self.epoch + 1, self.step + 1
        return TrainingDiverged(
            f"training diverged: {what} at epoch {epoch}, step {step} (batch {self.batch + 1} "
            f"of {self.steps_per_epoch}); {self.checkpoint_path} still holds the last good "
            "state. Try a lower learning rate (--lr) or warm-up (--warmup).", epoch, step)

    def evaluate(self, dataset: Dataset | None = None, *, tta: int = 0) -> dict[str, float]:
        """:func:`evaluate` on ``dataset`` (default the test set) with the weights used for
        reporting (the EMA's when enabled): ``{"loss", "top1", "top5"}``, and the ``tta_``
        ones with a TTA level."""
        with self.ema.applied() if self.ema is not None else contextlib.nullcontext():
            return evaluate(self.model, self.test_set if dataset is None else dataset,
                            batch_size=self.config.batch_size,
                            label_smoothing=self.config.label_smoothing, mean=self.mean,
                            std=self.std, tta=tta)

    def _evaluation_plan(self, epoch_number: int, epochs: int
                         ) -> list[tuple[str, Dataset, int]]:
        """What epoch ``epoch_number`` (1-based) of ``epochs`` evaluates: ``(column prefix,
        data set, TTA level)`` rows (module docstring). The last epoch evaluates the
        validation split (if any) and the test set (unless ``final_test`` is off), with TTA;
        other epochs the validation split, else the test set, without TTA, or nothing without
        ``eval_each_epoch``."""
        last = epoch_number == epochs
        monitor = ("test", self.test_set) if self.val_set is None else ("val", self.val_set)
        plan = [(*monitor, self.config.tta if last else 0)]
        if last and self.val_set is not None and self.config.final_test:
            plan.append(("test", self.test_set, self.config.tta))
        return plan if last or self.config.eval_each_epoch else []

    def _evaluated_images(self, epoch_number: int, epochs: int) -> int:
        """How many images epoch ``epoch_number`` of ``epochs`` evaluates, each counted once
        per forward pass it takes (TTA views)."""
        return sum(len(data) * TTA_VIEWS[tta]
                   for _, data, tta in self._evaluation_plan(epoch_number, epochs))

    def _evaluate_for_metrics(self, epoch_number: int, dataset: Dataset,
                              tta: int) -> dict[str, float]:
        started = time.perf_counter()
        try:
            result = self.evaluate(dataset, tta=tta)
        except FloatingPointError as e:  # the weights are broken
            raise TrainingDiverged(
                f"training diverged: {e} when evaluating after epoch {epoch_number} (step "
                f"{self.step}); {self.checkpoint_path} still holds the last good state",
                epoch_number, self.step) from e
        return {**result, "time_s": time.perf_counter() - started}

    def _interrupted(self) -> TrainingInterrupted:
        epoch, step = self.epoch + 1, self.step
        if self._in_step:  # the weights may be half-updated: keep the last checkpoint
            self._in_step = False
            saved = training_state(*read_training_checkpoint(self.checkpoint_path))
            return TrainingInterrupted(
                f"interrupted during step {step + 1} of epoch {epoch}: not saved; "
                f"{self.checkpoint_path} still holds epoch {saved.epoch + 1} step "
                f"{saved.step}; resume with: {self._resume_hint()}", epoch, step, False)
        self._tick()
        self.save_checkpoint()
        return TrainingInterrupted(
            f"interrupted at epoch {epoch} step {step}; saved {self.checkpoint_path}; resume "
            f"with: {self._resume_hint()}", epoch, step, True)

    # --- time budget -------------------------------------------------------------------------
    def _fit_to_time_budget(self, started: float) -> None:
        """Set ``config.epochs`` to the most epochs (up to its value) that fit what is left of
        ``config.time_budget`` after ``started`` (:mod:`minieffnet.budget`), and the schedule
        to that length."""
        timing = self._measure()
        available = seconds_left(self.config.time_budget, started)
        epochs, self.predicted_s = fit_to_budget(
            available, self.config.epochs, steps_per_epoch=self.steps_per_epoch, timing=timing,
            resolutions=lambda n: [self.config.stage(e, n).resolution for e in range(n)],
            eval_images=lambda n: [self._evaluated_images(e + 1, n) for e in range(n)])
        self.config = dataclasses.replace(self.config, epochs=epochs)
        self.schedule = build_schedule(self.config, self.steps_per_epoch)
        if self.verbose:
            print(f"time budget {self.config.time_budget:g} min: {epochs} epochs fit "
                  f"(predicted {self.predicted_s / 60:.1f} min of the "
                  f"{available / 60:.1f} left)")

    def _measure(self) -> Timing:
        """Time training steps at the first and the last training resolution and an
        evaluation batch on this run's model, optimiser and data
        (:func:`~minieffnet.budget.measure`); then put the run back in the state it was in
        (weights, BatchNorm statistics, optimiser state, both random streams, the model's mode
        and the loader's resolution), so the run itself is unchanged."""
        before = self._state()
        try:
            return measure(self.model, self.loader,
                           (self.config.stage(e).resolution for e in (0, self.config.epochs - 1)),
                           self._optimizer_step, lambda x: _finite_forward(self.model, x))
        finally:
            self.model.train()
            self._apply_state(before)
            self.loader.resolution = self.model.config.resolution

    # --- training state and checkpoints ------------------------------------------------------
    def _state(self) -> TrainingState:
        """A copy of everything training changes (:class:`TrainingState`)."""
        return TrainingState(
            model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
            ema=None if self.ema is None else self.ema.state_dict(),
            model_rng=self.model.rng.bit_generator.state, loader_rng=self._loader_epoch_state,
            epoch=self.epoch, batch=self.batch, step=self.step, totals=dict(self._totals),
            elapsed_s=self._elapsed_s)

    def _apply_state(self, state: TrainingState) -> None:
        """Put the run in ``state``; the next epoch re-makes the ``state.batch`` batches
        already trained on. Raises ValueError, TypeError or KeyError if it does not fit the
        run (arrays of other shapes or names, missing totals), possibly half-applied."""
        self.model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        if self.ema is not None:
            self.ema.load_state_dict(state.ema)
        self.model.rng.bit_generator.state = state.model_rng
        self.loader.rng.bit_generator.state = state.loader_rng
        self.epoch, self.batch, self.step = int(state.epoch), int(state.batch), int(state.step)
        self._totals = {k: float(state.totals[k]) for k in _fresh_totals()}
        self._elapsed_s = float(state.elapsed_s)
        self._loader_epoch_state = self.loader.rng.bit_generator.state

    def save_checkpoint(self) -> Path:
        """Write the full training state to ``checkpoint.npz`` atomically
        (:func:`~minieffnet.checkpoint.save_training_checkpoint`).

        Refuses (TrainingDiverged) to write non-finite weights or BatchNorm statistics over
        the last good state.
        """
        try:
            return save_training_checkpoint(
                self.checkpoint_path, self._state(), model_config=self.model.config,
                dtype=self.model.dtype, train_config=self.config.to_dict(),
                class_names=self.train_set.class_names, mean=self.mean, std=self.std,
                data=self.data_fingerprint.to_dict())
        except NonFiniteError as e:
            raise TrainingDiverged(f"not saving: {e} at step {self.step}; "
                                   f"{self.checkpoint_path} keeps the last good state",
                                   self.epoch + 1, self.step) from None

    def _load_checkpoint(self) -> None:
        path = self.checkpoint_path
        parts, meta = read_training_checkpoint(path)
        with checkpoint_field(path, "train_config"):
            stored = TrainConfig.from_dict(meta["train_config"])
        diffs = train_config_differences(stored, self.config)
        if diffs:
            raise ValueError(f"checkpoint {path} belongs to a different run: {'; '.join(diffs)}")
        self._check_same_data(meta, path)
        network = training_model_config(meta, path)
        diffs = config_differences(network, self.model.config)
        if diffs:
            raise ValueError(f"checkpoint {path} holds another architecture than this run "
                             f"builds: {'; '.join(diffs)}")
        state = training_state(parts, meta)
        if (state.ema is not None) != (self.ema is not None):
            held = "an EMA" if state.ema is not None else "no EMA"
            raise ValueError(f"checkpoint {path} holds {held} but the config has "
                             f"ema={self.config.ema}")
        try:
            self._apply_state(state)
        except (ValueError, TypeError, KeyError) as e:
            raise BadFileError(f"checkpoint {path} cannot be resumed: {e}") from e
        if not 0 <= self.batch <= self.steps_per_epoch:
            raise ValueError(f"checkpoint {path} stands at batch {self.batch} of an epoch of "
                             f"{self.steps_per_epoch}")
        trim_metrics(self.run_dir, self.epoch)

    def _check_same_data(self, meta: dict, path: Path) -> None:
        """Refuse to resume on other data than the run started with: ValueError naming every
        change (:meth:`~minieffnet.data_fingerprint.DataFingerprint.changes_since`)."""
        if "data" not in meta:
            # Written before runs recorded their data: resumed unchecked, as it always was; its
            # next checkpoint records the data it continues with, checked from then on.
            return
        with checkpoint_field(path, "data"):
            stored = DataFingerprint.from_dict(meta["data"])
        changes = self.data_fingerprint.changes_since(stored)
        if changes:
            raise ValueError(f"the data set changed since this run started: "
                             f"{'; '.join(changes)}; start a new run (another --out) or "
                             f"replace this one (--overwrite)")


@contextlib.contextmanager
def _deferred_sigint(trainer: Trainer):
    """While training, the first Ctrl-C asks the loop to stop at the next step boundary (or
    at once during evaluation); a second one interrupts immediately. Only the main thread
    receives signals, so elsewhere Ctrl-C keeps its default behaviour."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if trainer._interruptible or trainer._stop_requested:
            raise KeyboardInterrupt
        trainer._stop_requested = True
        print("\nCtrl-C: finishing this step, then saving a checkpoint "
              "(Ctrl-C again to stop at once without saving)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        # None: the previous handler was not set from Python; the default is the closest.
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
