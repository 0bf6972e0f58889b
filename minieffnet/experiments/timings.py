"""Equal FLOPs is not equal time: every network of a study timed on its own, quietly.

Dollár et al. (2021) found that a network's run time follows its activations more than its
FLOPs, and resolution scaling adds activations fastest (a 4x resolution-scaled network holds
1.4x the activations of the compound-scaled one at the same FLOPs). A study's recorded train
times cannot tell this: its trials ran two at a time on shared cores, on machines that
changed between sessions. So :func:`time_study` times one training step of every model of a
finished study in this process, one model after the other, and writes ``timings.csv``; the
study's report then puts each model's accuracy against its *quiet* training time (its steps
times its measured step time) beside accuracy against FLOPs. Run it on an otherwise idle
machine: it measures wall time.
"""
from __future__ import annotations

import csv
import json
import os
import platform
from pathlib import Path
from typing import Callable

import numpy as np

from .trials import TRIAL_FILE, TRIALS_DIR, code_version

TIMINGS_FILE = "timings.csv"
TIMING_COLUMNS = ("model", "step_s", "threads", "batch_size", "resolution", "code_version",
                  "machine")


def time_training_step(train, num_classes: int = 10, steps: int = 10,
                       warmup: int = 3) -> float:
    """Median seconds of one training step of ``train``'s network (a
    :class:`~minieffnet.train_config.TrainConfig`): forward in training mode, the
    label-smoothed loss, backward and the optimiser's update, on a random float32 batch of
    ``train.batch_size`` images at the network's resolution, with the Numba threads this
    process has. ``num_classes`` only sizes the classifier (a small share of the step)."""
    from ..model import efficientnet
    from ..ops import softmax_cross_entropy
    from ..budget import median_seconds
    from ..train_config import build_optimizer

    model = efficientnet(train.variant, num_classes, preset=train.preset, seed=0,
                         **train.model_overrides())
    model.train()
    optimizer = build_optimizer(train, model.parameters())
    rng = np.random.default_rng(0)
    side = model.config.resolution
    x = rng.standard_normal((train.batch_size, 3, side, side), dtype=np.float32)
    y = rng.integers(0, num_classes, train.batch_size)

    def step() -> None:
        _, dlogits = softmax_cross_entropy(model(x), y, train.label_smoothing)
        model.backward(dlogits)
        optimizer.step()

    return median_seconds(step, steps, warmup)


def _first_trial_of_each_model(study_dir: Path) -> dict[str, dict]:
    """``{model: trial record}`` for the first finished trial (lowest seed) of every model."""
    records: dict[str, dict] = {}
    for path in sorted((study_dir / TRIALS_DIR).glob(f"*/{TRIAL_FILE}")):
        row = json.loads(path.read_text(encoding="utf-8"))
        if row["model"] not in records or row["seed"] < records[row["model"]]["seed"]:
            records[row["model"]] = row
    return records


def time_study(study_dir: str | os.PathLike, threads: int = 1, steps: int = 10,
               log: Callable[[str], None] = print) -> list[dict]:
    """Time a training step of every model of the study in ``study_dir`` (the settings of its
    first finished trial: network, batch size, optimiser), one after the other in this
    process with ``threads`` Numba threads, and write ``timings.csv`` there (columns
    :data:`TIMING_COLUMNS`). Models of one network at several budgets are timed once.
    Returns the rows."""
    import numba

    from ..train_config import TrainConfig

    study_dir = Path(study_dir)
    records = _first_trial_of_each_model(study_dir)
    if not records:
        raise ValueError(f"{study_dir} holds no finished trial to time")
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    rows, seen = [], {}
    for model, record in records.items():
        train = TrainConfig.from_dict(record["train_config"])
        network = (train.width, train.depth, train.resolution, train.preset, train.batch_size)
        if network not in seen:
            seen[network] = time_training_step(train, steps=steps)
            log(f"{model}: {1000 * seen[network]:.1f} ms per step")
        rows.append({"model": model, "step_s": seen[network], "threads": threads,
                     "batch_size": train.batch_size, "resolution": record["resolution"],
                     "code_version": code_version(),
                     "machine": f"{platform.machine()} {platform.processor() or ''}".strip()})
    with open(study_dir / TIMINGS_FILE, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, TIMING_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def read_timings(study_dir: str | os.PathLike) -> dict[str, float]:
    """``{model: seconds per training step}`` from the study's ``timings.csv``; empty when
    the study has not been timed."""
    path = Path(study_dir) / TIMINGS_FILE
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {row["model"]: float(row["step_s"]) for row in csv.DictReader(f)}


def quiet_train_minutes(rows: list[dict], study_dir: str | os.PathLike,
                        timings: dict[str, float]) -> dict[str, float]:
    """``{model: minutes}``: each timed model's optimiser steps (the last ``step`` of its first
    trial's metrics) times its quiet step time — its training time on an idle machine."""
    from ..viz import read_metrics

    minutes = {}
    for r in rows:
        if r["model"] in timings and r["model"] not in minutes:
            metrics = read_metrics(Path(study_dir) / r["run_dir"] / "metrics.jsonl")
            minutes[r["model"]] = metrics[-1]["step"] * timings[r["model"]] / 60
    return minutes
