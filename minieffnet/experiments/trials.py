"""One training run of a study (a :class:`Trial`), run once and recorded in ``trial.json``;
many of them in processes or on any :class:`concurrent.futures.Executor` (a Dask cluster)."""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import json
import multiprocessing
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..io import write_text_atomic
from ..scaling import (EfficientNetConfig, count_activations, count_flops, count_parameters,
                       make_config)
from ..validate import is_int, is_real

TRIAL_FILE = "trial.json"
TRIALS_DIR = "trials"


# --- trials --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Trial:
    """One training run of a study: ``model`` (the row it belongs to) trained with ``seed``.

    ``train`` is the complete :class:`~minieffnet.train.TrainConfig` (its ``out_dir`` is the
    trial's folder); ``info`` carries the study's own columns (strategy, target, α, β, γ ...).
    """
    model: str
    seed: int
    train: Any
    info: dict

    @property
    def run_dir(self) -> Path:
        return Path(self.train.out_dir)


def train_config_for(base_train, config: EfficientNetConfig, seed: int, out_dir: Path):
    """``base_train`` with the model ``config`` (a scaled version of its own) and ``seed``."""
    return dataclasses.replace(base_train, phi=None, width=config.width, depth=config.depth,
                               resolution=config.resolution, seed=seed, out_dir=str(out_dir))


def base_model(base_train) -> EfficientNetConfig:
    """The network ``base_train`` describes (10 classes: a stand-in, the ratios do not care)."""
    return make_config(base_train.variant, 10, preset=base_train.preset,
                       **base_train.model_overrides())


def _portable_train_config(train, study_root: Path | None) -> dict:
    """``train.to_dict()`` with the locations made portable: ``out_dir`` relative to the study
    folder and no ``data_dir``, so a record committed from one machine matches on another
    (neither field takes part in :func:`~minieffnet.train.train_config_differences`)."""
    d = train.to_dict()
    d["data_dir"] = None
    if study_root is not None:
        d["out_dir"] = _relative_to(Path(train.out_dir), study_root)
    return d


@functools.lru_cache(maxsize=None)
def code_version() -> str:
    """The code a trial runs on: the commit of the git checkout minieffnet is imported from
    (12 hex digits), with ``+dirty`` when its package files differ from that commit, or
    ``minieffnet <version>`` when it is not imported from a checkout (an installed wheel).

    Float rounding follows the kernels, so the same network and seed trained on two versions
    can differ by as much as two seeds do: a study records the version of every trial and
    warns when they mix (:func:`run_trials`)."""
    package = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(package), *args], capture_output=True,
                              text=True, timeout=30, check=True).stdout.strip()
    try:
        top = Path(git("rev-parse", "--show-toplevel")).resolve()
        if top != package.parent:
            raise ValueError(f"{package} is not the checkout's own package")
        commit = git("rev-parse", "HEAD")[:12]
        dirty = git("status", "--porcelain", "--", ".")
    except (OSError, ValueError, subprocess.SubprocessError):
        from importlib import metadata
        try:
            return f"minieffnet {metadata.version('minieffnet')}"
        except metadata.PackageNotFoundError:
            return "minieffnet (unknown version)"
    return commit + ("+dirty" if dirty else "")


def code_versions(rows: Sequence[dict]) -> collections.Counter:
    """How many of ``rows`` (trial rows) ran on each code version (``"unrecorded"`` for
    records older than the ``code_version`` field)."""
    return collections.Counter(r.get("code_version", "unrecorded") for r in rows)


def _relative_to(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` in POSIX form (both resolved first)."""
    return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()


# What a finished trial's record must hold, and what each field must be: a record is read
# back into tables, statistics and figures, so a truncated, hand-edited or foreign file must
# stop the study with the file's name rather than end up as a row of 500 % or NaN.
_FRACTION = ("a fraction in [0, 1]", lambda v: is_real(v) and 0 <= v <= 1)
_RECORD_FIELDS = {
    "model": ("text", lambda v: isinstance(v, str)),
    "seed": ("an integer >= 0", lambda v: is_int(v) and v >= 0),
    "epochs": ("an integer >= 1", lambda v: is_int(v) and v >= 1),
    "flops": ("an integer >= 1", lambda v: is_int(v) and v >= 1),
    "params": ("an integer >= 1", lambda v: is_int(v) and v >= 1),
    "width": ("a number > 0", lambda v: is_real(v) and v > 0),
    "depth": ("a number > 0", lambda v: is_real(v) and v > 0),
    "resolution": ("an integer >= 1", lambda v: is_int(v) and v >= 1),
    "top1": _FRACTION, "top5": _FRACTION,
    "train_time_s": ("a number >= 0", lambda v: is_real(v) and v >= 0),
    "run_dir": ("a path", lambda v: isinstance(v, str) and v != ""),
    "train_config": ("an object", lambda v: isinstance(v, dict)),
}
_OPTIONAL_FIELDS = {  # fields later versions added: checked when present
    "val_top1": _FRACTION, "val_top5": _FRACTION, "train_top1": _FRACTION,
    "activations": ("an integer >= 0", lambda v: is_int(v) and v >= 0),
    "code_version": ("text", lambda v: isinstance(v, str)),
}


def read_trial_record(path: Path, trial: Trial, study_root: Path | None) -> dict:
    """The row a finished trial wrote to ``path`` (its ``trial.json``), checked field by field
    and against ``trial``: its model and seed, and a ``run_dir`` that is the trial's own
    folder (so nothing is read from outside the study). Raises
    :class:`~minieffnet.errors.BadFileError` naming the file and the field."""
    from ..errors import BadFileError
    from ..train_config import TrainConfig
    try:
        row = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadFileError(f"{path}: not a trial record (invalid JSON: {e}); delete it to "
                           "train the trial again") from e
    if not isinstance(row, dict):
        raise BadFileError(f"{path}: not a trial record (a JSON {type(row).__name__}, not an "
                           "object)")
    for fields, required in ((_RECORD_FIELDS, True), (_OPTIONAL_FIELDS, False)):
        for field, (what, ok) in fields.items():
            if field not in row:
                if required:
                    raise BadFileError(f"{path}: the trial record has no {field!r}")
                continue
            if not ok(row[field]):
                raise BadFileError(f"{path}: {field!r} must be {what}, got {row[field]!r}")
    if (row["model"], row["seed"]) != (trial.model, trial.seed):
        raise BadFileError(f"{path}: records {row['model']!r} seed {row['seed']}, not "
                           f"{trial.model!r} seed {trial.seed}: a record of another trial")
    where = (study_root / row["run_dir"]) if study_root is not None else Path(row["run_dir"])
    if where.resolve() != trial.run_dir.resolve():
        raise BadFileError(f"{path}: 'run_dir' {row['run_dir']!r} is not this trial's folder "
                           f"({trial.run_dir})")
    try:
        TrainConfig.from_dict(row["train_config"])
    except (TypeError, ValueError) as e:
        raise BadFileError(f"{path}: 'train_config': {e}") from e
    return row


def run_trial(trial: Trial, progress: bool = False) -> dict:
    """Train ``trial`` unless finished; return its result row (also in ``trial.json``).

    Finished (``trial.json`` present): read back, after checking it is this trial's. Interrupted
    (a checkpoint but no ``trial.json``): resumed from the checkpoint. Otherwise trained from
    scratch (replacing the leftovers of a run that never saved a checkpoint).

    The row names paths relative to the study folder (the parent of ``trials/``), never absolute
    ones, so a study's records can be committed and resumed from another clone.
    """
    from ..checkpoint import CHECKPOINT_FILE
    from ..train import Trainer
    from ..train_config import TrainConfig, train_config_differences
    done = trial.run_dir / TRIAL_FILE
    study_root = trial.run_dir.parent.parent if trial.run_dir.parent.name == TRIALS_DIR else None
    if done.is_file():
        row = read_trial_record(done, trial, study_root)
        diffs = train_config_differences(TrainConfig.from_dict(row["train_config"]),
                                         trial.train)
        if diffs:
            raise ValueError(f"{trial.run_dir} holds a different trial ({'; '.join(diffs)}); "
                             "use a new study folder")
        return {**row, "trained": False}
    resume = (trial.run_dir / CHECKPOINT_FILE).is_file()
    trainer = Trainer(trial.train, resume=resume, overwrite=not resume, progress=progress,
                      verbose=False)
    last = trainer.fit()[-1]
    net = trainer.model.config
    run_dir = (_relative_to(trial.run_dir, study_root) if study_root is not None
               else str(trial.run_dir))
    row = {"model": trial.model, "seed": trial.seed, **trial.info,
           "epochs": trial.train.epochs, "flops": count_flops(net),
           "params": count_parameters(net), "activations": count_activations(net),
           "width": net.width, "depth": net.depth, "resolution": net.resolution,
           "top1": last["test_top1"], "top5": last["test_top5"],
           # With a validation split (``val_size``) every choice is made on it; the test
           # accuracy above is reported, never chosen on.
           **{k: last[k] for k in ("val_top1", "val_top5") if k in last},
           "train_top1": last["train_top1"],
           "train_time_s": last["elapsed_s"], "run_dir": run_dir,
           "code_version": code_version(),
           "train_config": _portable_train_config(trial.train, study_root)}
    write_text_atomic(done, json.dumps(row, indent=1))
    return {**row, "trained": True}


def _set_worker_threads(threads: int) -> None:
    """Process-pool initializer: this worker's Numba kernels use ``threads`` threads."""
    import numba
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def run_trials(trials: Sequence[Trial], jobs: int = 1,
               log: Callable[[str], None] = print,
               executor: concurrent.futures.Executor | None = None) -> list[dict]:
    """Run every trial (see :func:`run_trial`), ``jobs`` at a time in separate processes, or
    on ``executor`` when given (any :class:`concurrent.futures.Executor`, e.g. a Dask
    cluster's ``distributed.Client(address).get_executor()``: trials are independent and
    resumable, so an existing engine schedules them; see :func:`dask_executor`).

    Processes are started with ``spawn``: Numba's threading layer is not safe to fork once it
    has run. With ``jobs`` processes each uses ``cores // jobs`` Numba threads (at least one),
    so ``jobs=2`` on two cores runs two single-threaded trials side by side, which keeps small
    networks' cores busier than one two-threaded trial does (their kernels are too short to
    split well).

    Trials run shortest training first, then seed by seed: every model of the first seed before
    any of the second, and every seed at the first budget before any longer one. So a long
    study stopped part-way already holds a complete single-seed comparison, then a complete
    multi-seed one at its first budget (the one its statistics need most). Results come back
    in the order of ``trials``; each row has ``trained`` telling whether this call trained it.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs}")
    rows: list[dict | None] = [None] * len(trials)

    def report(i: int, row: dict) -> None:
        rows[i] = row
        state = "trained" if row["trained"] else "already done"
        log(f"[{sum(r is not None for r in rows)}/{len(trials)}] {row['model']} seed "
            f"{row['seed']}: top-1 {100 * row['top1']:.1f} % ({state})")

    order = sorted(range(len(trials)),  # stable: model order kept
                   key=lambda i: (trials[i].train.epochs, trials[i].seed))

    def run_on(pool: concurrent.futures.Executor, in_flight: int) -> None:
        # At most ``in_flight`` trials are submitted at once: a ProcessPoolExecutor moves
        # submitted work into its workers' queue, where it can no longer be cancelled, so after
        # Ctrl-C its workers would start trials that were merely queued.
        queue = iter(order)
        futures: dict[concurrent.futures.Future, int] = {}

        def submit_next() -> None:
            i = next(queue, None)
            if i is not None:
                futures[pool.submit(run_trial, trials[i])] = i

        for _ in range(in_flight):
            submit_next()
        try:
            while futures:
                finished, _ = concurrent.futures.wait(
                    futures, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in finished:
                    report(futures.pop(future), future.result())
                    submit_next()
        except BaseException:  # Ctrl-C here, or a trial that failed or was interrupted:
            for future in futures:  # start no queued trial; the running ones save and stop
                future.cancel()
            raise

    if executor is not None:  # its own scheduler decides what runs; pending work cancels
        run_on(executor, len(trials))
    elif jobs == 1:
        for i in order:
            report(i, run_trial(trials[i]))
    else:
        context = multiprocessing.get_context("spawn")
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context,
                                                    initializer=_set_worker_threads,
                                                    initargs=(threads,)) as pool:
            run_on(pool, jobs)
    versions = code_versions(rows)
    if len(versions) > 1:
        log("warning: these trials ran on different code versions ("
            + ", ".join(f"{v}: {n}" for v, n in versions.most_common())
            + "); float rounding differs between versions as much as between seeds, so run "
              "a study from one pinned checkout (a git worktree at a fixed commit)")
    return rows


def dask_executor(address: str) -> concurrent.futures.Executor:
    """A :class:`concurrent.futures.Executor` running on the Dask cluster at ``address``
    (e.g. ``"tcp://scheduler:8786"``). Needs the ``cluster`` extra (``pip install
    minieffnet[cluster]``); every worker needs minieffnet and the data (``--data-dir`` must
    be a path the workers can read) and the study folder on a shared file system."""
    try:
        from distributed import Client
    except ImportError as e:
        raise ValueError("dispatching trials to Dask needs the 'distributed' package: "
                         "pip install 'minieffnet[cluster]'") from e
    return Client(address).get_executor()
