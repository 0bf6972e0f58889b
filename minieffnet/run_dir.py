"""A run's folder: naming a new one, refusing to mix two runs in one, claiming it when training
starts, and what a resumed run keeps of it.

A run lives in one folder (``TrainConfig.out_dir``; :data:`RUN_FILES`):

==================  ===========================================================================
``config.json``     the :class:`~minieffnet.train_config.TrainConfig`, written when training
                    starts (with a time budget: the fitted ``epochs``)
``checkpoint.npz``  everything needed to continue (:mod:`minieffnet.checkpoint`)
``metrics.jsonl``   one JSON object per finished epoch
``curves.png``      loss and accuracy per epoch (:mod:`minieffnet.viz`)
==================  ===========================================================================

Any of these files means the folder holds a run: a new run may take it only when it is told to
replace it (``overwrite``), and a resumed run only when its config equals the stored one (but
``out_dir`` / ``data_dir``). Whether a resumed run's data is still the data it started with
is the :class:`minieffnet.train.Trainer`'s to check once it has loaded the data (against the
checkpoint's fingerprint, :mod:`minieffnet.data_fingerprint`). The Trainer uses these
functions; nothing here trains.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from .checkpoint import CHECKPOINT_FILE
from .io import remove_temporaries, write_text_atomic
from .train_config import (CONFIG_FILE, TrainConfig, load_train_config, save_train_config,
                           train_config_differences)

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"
RUN_FILES = (CONFIG_FILE, CHECKPOINT_FILE, METRICS_FILE, CURVES_FILE)


def new_run_dir(dataset: str) -> Path:
    """A folder for a new run that does not exist yet: ``runs/<dataset>-<YYYYmmdd-HHMMSS>``,
    with ``-2``, ``-3``, ... appended while that one is taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = Path("runs") / f"{dataset}-{stamp}", 2
    while path.exists():
        path, n = Path("runs") / f"{dataset}-{stamp}-{n}", n + 1
    return path


def check_run_dir(run_dir: Path, config: TrainConfig, *, resume: bool, overwrite: bool) -> None:
    """Refuse to mix two runs in ``run_dir`` (module docstring).

    resume: the folder must hold a checkpoint and a ``config.json`` equal to ``config`` (but
    the location fields), else FileNotFoundError / ValueError. Otherwise, unless
    ``overwrite``, a folder holding any of :data:`RUN_FILES` is refused with a ValueError that
    says whether to resume, overwrite or choose another folder.
    """
    config_path, checkpoint_path = run_dir / CONFIG_FILE, run_dir / CHECKPOINT_FILE
    if resume:
        if not checkpoint_path.is_file():
            raise FileNotFoundError(f"nothing to resume: {checkpoint_path} does not exist")
        diffs = train_config_differences(load_train_config(run_dir), config)
        if diffs:
            raise ValueError(f"{run_dir} holds a run with a different config "
                             f"({'; '.join(diffs)}); resume it with its own settings")
        return
    # Any file a run writes counts: an unrelated metrics.jsonl is not overwritten either.
    held = [name for name in RUN_FILES if (run_dir / name).exists()]
    if overwrite or not held:
        return
    if config_path.is_file():
        diffs = train_config_differences(load_train_config(run_dir), config)
        if diffs:
            raise ValueError(f"{run_dir} already holds a different run "
                             f"({'; '.join(diffs)}); choose another output folder, or "
                             "overwrite it (--overwrite)")
    if not (config_path.is_file() or checkpoint_path.exists()):
        raise ValueError(f"{run_dir} already holds {' and '.join(held)}, which a run "
                         "would overwrite; choose another output folder, or replace them "
                         "(--overwrite)")
    held = "this run" if config_path.is_file() else "a checkpoint"
    raise ValueError(f"{run_dir} already holds {held}; continue it (--resume) or "
                     "start again (--overwrite)")


def drop_temporaries(run_dir: Path) -> None:
    """Remove the temporary files that a writer killed mid-write left beside the run's files
    (:func:`~minieffnet.io.remove_temporaries`); other files stay."""
    for name in RUN_FILES:
        remove_temporaries(run_dir / name)


def start_run_dir(run_dir: Path, config: TrainConfig, *, overwrite: bool) -> None:
    """Claim ``run_dir`` for a new run: create it, delete the previous run's files when
    ``overwrite``, write ``config.json`` and an empty ``metrics.jsonl``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
    save_train_config(run_dir, config)
    (run_dir / METRICS_FILE).write_text("", encoding="utf-8")


def trim_metrics(run_dir: Path, epochs: int) -> None:
    """Drop the ``metrics.jsonl`` rows of epochs after ``epochs`` (the ones the checkpoint has
    not finished, written just before an interruption), and any line cut short, so that the
    resumed run writes each epoch exactly once."""
    path = run_dir / METRICS_FILE
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["epoch"] <= epochs:
                kept.append(line + "\n")
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut short by the interruption
    write_text_atomic(path, "".join(kept))


def with_fitted_epochs(config: TrainConfig, run_dir: Path) -> TrainConfig:
    """``config`` with the epochs that the time-budgeted run in ``run_dir`` fitted, so that
    resuming it with its original settings continues the same schedule; unchanged when
    ``config`` has no time budget or the folder holds no run with the same budget."""
    if config.time_budget is None or not (run_dir / CONFIG_FILE).is_file():
        return config
    stored = load_train_config(run_dir)
    if stored.time_budget != config.time_budget:
        return config
    return dataclasses.replace(config, epochs=stored.epochs)
