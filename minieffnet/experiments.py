"""Scaling studies: single-dimension vs compound scaling, and the (α, β, γ) grid search.

Two studies from Tan & Le (2019), "EfficientNet: Rethinking Model Scaling for CNNs":

* :func:`compare_scaling` reproduces the comparison of the paper's Figure 8 (and Table 3 for
  MobileNets/ResNet): from one base network, for each target FLOPs multiplier build one model
  per strategy, scaling depth only, width only, resolution only, or all three with the
  compound rule (Eq. 3, ``d = α^φ, w = β^φ, r = γ^φ``), each *solved* so its FLOPs land within
  ±5 % of the target (:func:`solve_strategy`), and train every one with the same recipe.
* :func:`grid_search` is §3.3 Step 1: fix φ = 1, try (α, β, γ) on a grid with
  ``α·β²·γ² ≈ 2`` and ``α, β, γ ≥ 1`` (:func:`grid_candidates`), train each briefly, rank by
  accuracy and pick the best.

A study lives in one folder::

    study/
      trials/<trial>/      one training run each (config.json, checkpoint.npz, metrics.jsonl,
                           curves.png; see :mod:`minieffnet.train`) and trial.json, its result,
                           written once the run has finished
      trials.csv           one row per trial
      results.csv          one row per model (mean, std, 95 % CI over seeds)
      results.md           the same as a Markdown table
      accuracy_vs_flops.png   (compare_scaling) top-1 against FLOPs per strategy, as Figure 8
      single_dimension.png    (compare_scaling) one panel per single dimension, as Figure 3

Running a study again skips the trials that have a ``trial.json``, resumes those interrupted
from their checkpoint, and starts the others, so an interrupted study picks up where it
stopped. Trials are independent: ``jobs > 1`` runs them in that many processes, and an
``executor`` (e.g. :func:`dask_executor`, ``--dask ADDRESS`` on the command line) sends them
to a cluster.
"""
from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import json
import math
import multiprocessing
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .scaling import (PRESETS, EfficientNetConfig, count_activations, count_flops,
                      count_parameters, make_config)

STRATEGIES = ("depth", "width", "resolution", "compound")
PAPER_COEFFICIENTS = (1.2, 1.1, 1.15)  # α, β, γ found by the paper's grid search (§3.3)
FLOPS_TOLERANCE = 0.05                 # the solved FLOPs must be within ±5 % of the target
TRIAL_FILE = "trial.json"
TRIALS_DIR = "trials"
# E of protocol v2: the base's test top-1 against its training budget (5, 10, 20, 40 epochs,
# studies/cifar10-v2-budget) gains PENDING points from E to 2E.
V2_EPOCHS = 10


@dataclass(frozen=True)
class StudyProtocol:
    """A named, documented set of defaults for :func:`compare_scaling` (``--protocol``).

    ``base``: :class:`~minieffnet.train.TrainConfig` fields of the base network and of the
    recipe every trial shares; ``seeds``: seeds per model (0..seeds-1); ``targets``: FLOPs
    multipliers; ``budgets``: epochs per trial (the first for every model, the others for the
    base and the 2x models, see :func:`compare_scaling`).
    """
    name: str
    summary: str
    base: dict
    seeds: int
    targets: tuple[float, ...]
    budgets: tuple[int, ...]


PROTOCOLS = {
    "v1": StudyProtocol(
        "v1", "the first CIFAR-scale study: 32 px base (resolution scaling only upsamples), "
        "2 epochs on a class-balanced 5,000-image subset, 2 seeds",
        base=dict(dataset="cifar10", preset="cifar", width=0.25, depth=0.25, resolution=None,
                  train_size=5000, test_size=2000),
        seeds=2, targets=(2.0, 4.0), budgets=(2,)),
    "v2": StudyProtocol(
        "v2", "16 px base, so that resolution scaling up to 2x the side (4x the FLOPs) sees "
        "real pixels of the 32 px images; all 50,000 training and 10,000 test images; 3 "
        "paired seeds; every model at E epochs and the base and 2x models also at 2E",
        base=dict(dataset="cifar10", preset="cifar", width=0.25, depth=0.25, resolution=16,
                  train_size=None, test_size=None),
        seeds=3, targets=(2.0, 4.0), budgets=(V2_EPOCHS, 2 * V2_EPOCHS)),
}


# Two-sided 95 % Student-t quantiles by degrees of freedom (1..30); beyond, the normal 1.96.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


# --- the FLOPs solver --------------------------------------------------------------------------
def _preset_of(config: EfficientNetConfig) -> str:
    """The preset whose stem and stage strides ``config`` has (needed to rebuild it scaled)."""
    strides = [s[0].stride for s in config.stages]
    for preset in PRESETS:
        ref = make_config("b0", 10, preset=preset)
        if ref.stem_stride == config.stem_stride and [s[0].stride for s in ref.stages] == strides:
            return preset
    raise ValueError(f"{config.name}: its strides match no preset ({', '.join(PRESETS)})")


def scale_config(base: EfficientNetConfig, depth: float = 1.0, width: float = 1.0,
                 resolution: float = 1.0, name: str | None = None) -> EfficientNetConfig:
    """``base`` with its depth and width multiplied by ``depth`` / ``width`` and its input size
    by ``resolution`` (rounded to whole pixels); dropout, BatchNorm and padding are kept.

    Channels round to multiples of 8 and repeats round up (:func:`~minieffnet.scaling.
    round_filters`, :func:`~minieffnet.scaling.round_repeats`), so the FLOPs follow the
    multipliers only in steps.
    """
    return dataclasses.replace(make_config(
        "b0", base.num_classes, preset=_preset_of(base), width=base.width * width,
        depth=base.depth * depth, resolution=max(1, round(base.resolution * resolution)),
        dropout=base.dropout, drop_connect=base.drop_connect, padding=base.padding,
        bn_eps=base.bn_eps, bn_momentum=base.bn_momentum), name=name or base.name)


def _strategy_multipliers(strategy: str, t: float, alpha: float, beta: float,
                          gamma: float) -> tuple[float, float, float]:
    """(depth, width, resolution) multipliers at the strategy's continuous parameter ``t``.

    Single dimensions grow as ``e^t``; compound as ``(α^t, β^t, γ^t)`` so ``t`` is φ (Eq. 3).
    """
    if strategy == "depth":
        return math.exp(t), 1.0, 1.0
    if strategy == "width":
        return 1.0, math.exp(t), 1.0
    if strategy == "resolution":
        return 1.0, 1.0, math.exp(t)
    return alpha ** t, beta ** t, gamma ** t


def solve_strategy(base_config: EfficientNetConfig, strategy: str, target_multiplier: float,
                   alpha: float = PAPER_COEFFICIENTS[0], beta: float = PAPER_COEFFICIENTS[1],
                   gamma: float = PAPER_COEFFICIENTS[2], *,
                   tolerance: float = FLOPS_TOLERANCE) -> EfficientNetConfig:
    """Scale ``base_config`` by one ``strategy`` until its FLOPs are ``target_multiplier`` times
    the base's (within ``tolerance``, default ±5 %), as the paper's Figure 8 / Table 3 compare
    scaling methods at equal FLOPs.

    ``strategy`` is ``"depth"``, ``"width"``, ``"resolution"`` (that multiplier alone) or
    ``"compound"`` (Eq. 3: depth α^φ, width β^φ, resolution γ^φ, solving for φ; the paper's
    ``α·β²·γ² ≈ 2`` makes φ ≈ log2 of the target before rounding).

    FLOPs (:func:`~minieffnet.scaling.count_flops`) do not depend smoothly on the multipliers:
    channels round to multiples of 8, repeats round up and the resolution to whole pixels. They
    never decrease as the multiplier grows, so a bisection on the continuous multiplier finds
    the two rounded networks on either side of the target; the closer one (in log ratio) is
    returned. Its ``name`` records the strategy, the multiplier and the achieved ratio
    (``count_flops(result) / count_flops(base_config)``). Raises ValueError if neither is
    within the tolerance (the rounding step there is too coarse: use a wider, deeper or larger
    base), or for an unknown strategy or a non-positive target.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    if not target_multiplier > 0 or not math.isfinite(target_multiplier):
        raise ValueError(f"target_multiplier must be a positive number, got {target_multiplier}")
    if strategy == "compound" and alpha * beta ** 2 * gamma ** 2 <= 1:
        raise ValueError(f"compound scaling needs α·β²·γ² > 1 to grow FLOPs, got "
                         f"{alpha * beta ** 2 * gamma ** 2:.3g}")
    base_flops = count_flops(base_config)

    def build(t: float) -> EfficientNetConfig:
        d, w, r = _strategy_multipliers(strategy, t, alpha, beta, gamma)
        return scale_config(base_config, d, w, r)

    def ratio(t: float) -> float:
        return count_flops(build(t)) / base_flops

    # Bracket the target: ratio(lo) <= target <= ratio(hi), widening geometrically.
    lo, hi, direction = 0.0, 0.0, 1.0 if target_multiplier >= 1 else -1.0
    step = 0.5
    for _ in range(5):  # |t| up to 8: multipliers up to e^8 ≈ 3000
        edge = direction * step
        if (ratio(edge) >= target_multiplier) == (direction > 0):
            lo, hi = (lo, edge) if direction > 0 else (edge, hi)
            break
        lo, hi = (edge, hi) if direction > 0 else (lo, edge)
        step *= 2
    else:
        raise ValueError(f"{strategy} scaling cannot reach {target_multiplier:g}x the FLOPs")
    for _ in range(60):  # shrink the bracket to the rounding step that crosses the target
        mid = (lo + hi) / 2
        if ratio(mid) >= target_multiplier:
            hi = mid
        else:
            lo = mid
    t = min((lo, hi), key=lambda x: abs(math.log(ratio(x) / target_multiplier)))
    achieved = ratio(t)
    if abs(achieved / target_multiplier - 1) > tolerance:
        raise ValueError(
            f"{strategy} scaling cannot reach {target_multiplier:g}x the FLOPs within "
            f"±{100 * tolerance:g} %: the nearest rounded networks give {ratio(lo):.3f}x and "
            f"{ratio(hi):.3f}x (channels round to 8, repeats up, resolution to pixels); use a "
            "larger base network")
    label = f"phi={t:.3f}" if strategy == "compound" else f"x{math.exp(t):.3f}"
    return dataclasses.replace(build(t), name=f"{strategy} {label} ({achieved:.3f}x FLOPs)")


# --- the grid of §3.3 Step 1 -------------------------------------------------------------------
def grid_candidates(step: float = 0.05, tol: float = 0.1) -> list[tuple[float, float, float]]:
    """Every (α, β, γ) on a grid of ``step`` from 1 with ``|α·β²·γ² − 2| <= tol``.

    The paper's constraint (Eq. 3): α, β, γ ≥ 1 and α·β²·γ² ≈ 2, so that φ = 1 doubles the
    FLOPs; its search found (1.2, 1.1, 1.15), product 1.92 (on the default grid with tol 0.1).
    Values are rounded to 10 decimals so the grid is exact; sorted by α, then β, then γ.
    """
    if not step > 0:
        raise ValueError(f"step must be positive, got {step}")
    if not 0 <= tol < 1:
        raise ValueError(f"tol must be in [0, 1), got {tol}")
    top = 2 + tol

    def axis(limit: float) -> list[float]:
        return [round(1 + i * step, 10) for i in range(int((limit - 1) / step + 1e-9) + 1)]

    return [(a, b, g) for a in axis(top) for b in axis(math.sqrt(top / a))
            for g in axis(math.sqrt(top / (a * b * b)))
            if abs(a * b * b * g * g - 2) <= tol + 1e-9]  # 1e-9: 1.9 - 2 is -0.10000000000000009


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


def _train_config_for(base_train, config: EfficientNetConfig, seed: int, out_dir: Path):
    """``base_train`` with the model ``config`` (a scaled version of its own) and ``seed``."""
    return dataclasses.replace(base_train, phi=None, width=config.width, depth=config.depth,
                               resolution=config.resolution, seed=seed, out_dir=str(out_dir))


def _base_model(base_train) -> EfficientNetConfig:
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


def _relative_to(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` in POSIX form (both resolved first)."""
    return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()


def run_trial(trial: Trial, progress: bool = False) -> dict:
    """Train ``trial`` unless finished; return its result row (also in ``trial.json``).

    Finished (``trial.json`` present): read back, after checking it is this trial's. Interrupted
    (a checkpoint but no ``trial.json``): resumed from the checkpoint. Otherwise trained from
    scratch (replacing the leftovers of a run that never saved a checkpoint).

    The row names paths relative to the study folder (the parent of ``trials/``), never absolute
    ones, so a study's records can be committed and resumed from another clone.
    """
    from .checkpoint import CHECKPOINT_FILE
    from .train import Trainer
    from .train_config import TrainConfig, train_config_differences
    done = trial.run_dir / TRIAL_FILE
    study_root = trial.run_dir.parent.parent if trial.run_dir.parent.name == TRIALS_DIR else None
    if done.is_file():
        row = json.loads(done.read_text(encoding="utf-8"))
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
           "train_time_s": last["elapsed_s"], "run_dir": run_dir,
           "train_config": _portable_train_config(trial.train, study_root)}
    tmp = done.with_name(f".{TRIAL_FILE}.tmp")
    tmp.write_text(json.dumps(row, indent=1), encoding="utf-8")
    os.replace(tmp, done)
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
    split well). Results come back in the order of ``trials``; each row has ``trained`` telling
    whether this call trained it.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs}")
    rows: list[dict | None] = [None] * len(trials)

    def report(i: int, row: dict) -> None:
        rows[i] = row
        state = "trained" if row["trained"] else "already done"
        log(f"[{sum(r is not None for r in rows)}/{len(trials)}] {row['model']} seed "
            f"{row['seed']}: top-1 {100 * row['top1']:.1f} % ({state})")

    def run_on(pool: concurrent.futures.Executor) -> None:
        futures = {pool.submit(run_trial, t): i for i, t in enumerate(trials)}
        for future in concurrent.futures.as_completed(futures):
            report(futures[future], future.result())

    if executor is not None:
        run_on(executor)
    elif jobs == 1:
        for i, trial in enumerate(trials):
            report(i, run_trial(trial))
    else:
        context = multiprocessing.get_context("spawn")
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context,
                                                    initializer=_set_worker_threads,
                                                    initargs=(threads,)) as pool:
            run_on(pool)
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


# --- aggregation and reports -----------------------------------------------------------------
def mean_std_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean, sample standard deviation and the half-width of the two-sided 95 % Student-t
    confidence interval of the mean (std and CI are NaN for a single value)."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return mean, math.nan, math.nan
    std = statistics.stdev(values)
    t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    return mean, std, t * std / math.sqrt(n)


def aggregate(rows: Sequence[dict], keys: Sequence[str]) -> list[dict]:
    """One row per ``model`` (in first-seen order): the ``keys`` columns of its first trial,
    FLOPs, params, activations, epochs, seeds, top-1 mean / std / 95 % CI and mean training
    time."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["model"], []).append(r)
    out = []
    for model, trials in groups.items():
        mean, std, ci = mean_std_ci([t["top1"] for t in trials])
        first = trials[0]
        out.append({"model": model, **{k: first[k] for k in keys},
                    "flops": first["flops"], "params": first["params"],
                    "activations": first.get("activations", math.nan),
                    "epochs": first.get("epochs", first["train_config"]["epochs"]),
                    "seeds": len(trials), "top1_mean": mean, "top1_std": std, "top1_ci95": ci,
                    "train_time_s": statistics.fmean(t["train_time_s"] for t in trials)})
    return out


def paired_difference(a: dict[int, float], b: dict[int, float]) -> dict[str, float]:
    """``a - b`` paired by seed: the seeds both hold, the mean difference and the half-width
    of its two-sided 95 % Student-t interval (NaN with one pair).

    Pairing removes what a seed does to every model alike (the data order and augmentation
    draws, shared by all models of a seed): the interval of the differences is narrower than
    the two models' own intervals would suggest when the seed effect is large.
    ``distinguishable`` is True when the interval excludes zero.
    """
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return {"pairs": 0, "diff": math.nan, "ci95": math.nan, "distinguishable": False}
    mean, _, ci = mean_std_ci([a[s] - b[s] for s in seeds])
    return {"pairs": len(seeds), "diff": mean, "ci95": ci,
            "distinguishable": bool(not math.isnan(ci) and abs(mean) > ci)}


def paired_differences(rows: Sequence[dict]) -> list[dict]:
    """For every scaled model of a :func:`compare_scaling` study, its top-1 minus the base's
    (same epochs) and minus compound scaling's (same target and epochs), paired by seed
    (:func:`paired_difference`). ``rows`` are trial rows (one per model and seed)."""
    by_model: dict[tuple, dict[int, float]] = {}
    meta: dict[tuple, dict] = {}
    for r in rows:
        key = (r["strategy"], r["target"], r["epochs"])
        by_model.setdefault(key, {})[r["seed"]] = r["top1"]
        meta.setdefault(key, r)
    out = []
    for (strategy, target, epochs), scores in by_model.items():
        if strategy == "base":
            continue
        row = {"model": meta[strategy, target, epochs]["model"], "strategy": strategy,
               "target": target, "epochs": epochs}
        for ref, key in (("base", ("base", 1.0, epochs)), ("compound",
                                                             ("compound", target, epochs))):
            if ref == strategy or key not in by_model:
                continue
            d = paired_difference(scores, by_model[key])
            row.update({f"vs_{ref}_{k}": v for k, v in d.items()})
        out.append(row)
    return out


def _write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


_TRIAL_COLUMNS = ("epochs", "flops", "params", "activations", "top1", "top5", "train_time_s",
                  "run_dir")
_RESULT_COLUMNS = ("epochs", "flops", "params", "activations", "seeds", "top1_mean",
                   "top1_std", "top1_ci95", "train_time_s")


def _write_tables(root: Path, rows: Sequence[dict], results: Sequence[dict],
                  keys: Sequence[str], first: Sequence[str] = ("model",)) -> None:
    """trials.csv (one row per trial) and results.csv (one per model, :func:`aggregate`),
    with the study's own ``keys`` columns after the model's name."""
    _write_csv(root / "trials.csv", rows, ("model", "seed", *keys, *_TRIAL_COLUMNS))
    _write_csv(root / "results.csv", results, (*first, *keys, *_RESULT_COLUMNS))


def _pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.1f}"


def _markdown(rows: Sequence[dict], columns: Sequence[tuple[str, Callable[[dict], str]]]) -> str:
    lines = ["| " + " | ".join(h for h, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(f(r) for _, f in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot_accuracy_vs_flops(rows: Sequence[dict], out_png: str | os.PathLike) -> Path:
    """Top-1 (mean ± std over seeds) against FLOPs, one line per strategy through the base
    model, as in the paper's Figure 8. ``rows`` are :func:`compare_scaling`'s aggregated rows."""
    base = [r for r in rows if r["strategy"] == "base"]
    lines = [dict(r, line=f"scale by {s}") for s in STRATEGIES
             for r in base + [r for r in rows if r["strategy"] == s]
             if any(r["strategy"] == s for r in rows)]
    return _plot_lines(lines, "line", out_png,
                       "Scaling strategies at equal FLOPs (cf. Tan & Le 2019, Fig. 8)")


def _plot_lines(rows: Sequence[dict], group: str, out_png: str | os.PathLike,
                title: str) -> Path:
    """Top-1 (mean ± std over seeds) against FLOPs, one line per value of ``rows[i][group]``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for label in dict.fromkeys(r[group] for r in rows):
        points = sorted((r for r in rows if r[group] == label), key=lambda r: r["flops"])
        ax.errorbar([r["flops"] / 1e6 for r in points], [100 * r["top1_mean"] for r in points],
                    yerr=[0 if math.isnan(r["top1_std"]) else 100 * r["top1_std"]
                          for r in points], marker="o", capsize=3, label=label)
    ax.set(xlabel="FLOPs (M multiply-adds)", ylabel="test top-1 (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    out = Path(out_png)
    fig.savefig(out, dpi=100)
    return out


def plot_single_dimension(rows: Sequence[dict], out_png: str | os.PathLike) -> Path:
    """The paper's Figure 3: top-1 against FLOPs when one dimension alone grows, one panel per
    dimension (width, depth, resolution), each point labelled with its multiplier. ``rows``
    are :func:`compare_scaling`'s aggregated rows; the base network starts every panel."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3, sharey=True)
    base = [r for r in rows if r["strategy"] == "base"]
    panels = (("width", "w", lambda r, b: r["width"] / b["width"]),
              ("depth", "d", lambda r, b: r["depth"] / b["depth"]),
              ("resolution", "r", lambda r, b: r["resolution"]))
    for ax, (strategy, letter, value) in zip(axes, panels):
        points = sorted(base + [r for r in rows if r["strategy"] == strategy],
                        key=lambda r: r["flops"])
        ax.errorbar([r["flops_ratio"] for r in points], [100 * r["top1_mean"] for r in points],
                    yerr=[0 if math.isnan(r["top1_std"]) else 100 * r["top1_std"]
                          for r in points], marker="o", capsize=3)
        for r in points:
            v = value(r, base[0]) if base else math.nan
            ax.annotate(f"{letter}={v:.3g}", (r["flops_ratio"], 100 * r["top1_mean"]),
                        textcoords="offset points", xytext=(4, -12), fontsize=8)
        ax.set(xlabel="FLOPs (x base)", title=f"scale {strategy} only")
        ax.margins(x=0.2)  # room for the last point's label
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test top-1 (%)")
    fig.suptitle("Single-dimension scaling (cf. Tan & Le 2019, Fig. 3)")
    out = Path(out_png)
    fig.savefig(out, dpi=100)
    return out


def _study_dirs(out_dir: str | os.PathLike) -> tuple[Path, Path]:
    root = Path(out_dir)
    (root / TRIALS_DIR).mkdir(parents=True, exist_ok=True)
    return root, root / TRIALS_DIR


# --- the two studies ---------------------------------------------------------------------------
def _models_at_budgets(models: Sequence[tuple], budgets: Sequence[int],
                       long_targets: Sequence[float]) -> list[tuple]:
    """``(name, strategy, target, config, epochs)`` for every model at the first budget, and
    for the models whose target is in ``long_targets`` at the later budgets too. Names carry
    the epochs (``width-x2-20ep``) when there is more than one budget."""
    several = len(budgets) > 1
    return [(f"{name}-{epochs}ep" if several else name, strategy, target, config, epochs)
            for i, epochs in enumerate(budgets)
            for name, strategy, target, config in models
            if i == 0 or target in long_targets]


def compare_scaling(base_train, out_dir: str | os.PathLike,
                    targets: Sequence[float] = (2.0, 4.0), seeds: Sequence[int] = (0, 1, 2),
                    strategies: Sequence[str] = STRATEGIES,
                    coefficients: tuple[float, float, float] = PAPER_COEFFICIENTS,
                    jobs: int = 1, log: Callable[[str], None] = print,
                    executor: concurrent.futures.Executor | None = None, *,
                    budgets: Sequence[int] | None = None,
                    long_targets: Sequence[float] = (1.0, 2.0)) -> list[dict]:
    """Figure 8 / Table 3 of the paper: the base network of ``base_train`` (a
    :class:`~minieffnet.train.TrainConfig`, whose recipe every trial shares) and, for each
    target FLOPs multiplier and strategy, the network :func:`solve_strategy` finds, each trained
    once per seed. Seed s gives every model the same data order and augmentation draws (the
    loader's Generator depends on the seed only, and augmentation runs on the stored images
    before each model's resize), so models can be compared pair by pair.

    ``budgets``: epochs per trial (default ``(base_train.epochs,)``). Every model trains at the
    first; the base (target 1) and the models whose target is in ``long_targets`` also train at
    the later ones, to show whether the ranking holds with more training.

    Writes in ``out_dir``: trials.csv, results.csv / results.md (one row per model),
    differences.csv / differences.md (paired differences to the base and to compound scaling,
    :func:`paired_differences`), accuracy_vs_flops.png (Figure 8, first budget; one more per
    later budget, ``accuracy_vs_flops_<E>ep.png``), single_dimension.png (Figure 3, first
    budget) and learning_curves.png (test top-1 against epoch, every model). Returns the
    aggregated rows (columns: model, strategy, target, flops_ratio, width, depth, resolution,
    flops, params, activations, epochs, seeds, top1_mean/std/ci95, train_time_s).

    All networks are solved before anything trains, so an unreachable target fails at once.
    """
    budgets = tuple(budgets) if budgets is not None else (base_train.epochs,)
    if not budgets or any(int(e) != e or e < 1 for e in budgets):
        raise ValueError(f"budgets must be positive whole epochs, got {budgets}")
    root, trials_dir = _study_dirs(out_dir)
    base = _base_model(base_train)
    models = [("base", "base", 1.0, base)]
    for target in targets:
        for strategy in strategies:
            config = solve_strategy(base, strategy, target, *coefficients)
            models.append((f"{strategy}-x{target:g}", strategy, float(target), config))
    base_flops = count_flops(base)
    trials = [Trial(name, seed, _train_config_for(dataclasses.replace(base_train, epochs=epochs),
                                                  config, seed,
                                                  trials_dir / f"{name}-seed{seed}"),
                    {"strategy": strategy, "target": target,
                     "flops_ratio": round(count_flops(config) / base_flops, 4)})
              for name, strategy, target, config, epochs in
              _models_at_budgets(models, budgets, long_targets) for seed in seeds]
    rows = run_trials(trials, jobs, log, executor)
    keys = ("strategy", "target", "flops_ratio", "width", "depth", "resolution")
    results = aggregate(rows, keys)
    _write_tables(root, rows, results, keys)
    table = _markdown(results, [
        ("strategy", lambda r: r["strategy"]), ("target", lambda r: f"{r['target']:g}x"),
        ("epochs", lambda r: str(r["epochs"])),
        ("FLOPs (M)", lambda r: f"{r['flops'] / 1e6:.2f} ({r['flops_ratio']:.3f}x)"),
        ("params", lambda r: f"{r['params']:,}"),
        ("activations (k/img)", lambda r: _thousands(r["activations"])),
        ("width / depth / res", lambda r: f"{r['width']:.3g} / {r['depth']:.3g} / "
                                          f"{r['resolution']}"),
        ("top-1 % (mean ± 95 % CI)",
         lambda r: f"{_pct(r['top1_mean'])} ± {_pct(r['top1_ci95'])}"),
        ("seeds", lambda r: str(r["seeds"])),
        ("train time (s)", lambda r: f"{r['train_time_s']:.0f}")])
    (root / "results.md").write_text(
        "# Scaling strategies at equal FLOPs (Tan & Le 2019, Figure 8 / Table 3)\n\n" + table,
        encoding="utf-8")
    differences = paired_differences(rows)
    _write_differences(root, differences)
    for i, epochs in enumerate(budgets):
        at = [r for r in results if r["epochs"] == epochs]
        if any(r["strategy"] != "base" for r in at):
            suffix = "" if i == 0 else f"_{epochs}ep"
            plot_accuracy_vs_flops(at, root / f"accuracy_vs_flops{suffix}.png")
            if i == 0:
                plot_single_dimension(at, root / "single_dimension.png")
    plot_learning_curves(rows, root, root / "learning_curves.png")
    return results


def _thousands(n: float) -> str:
    return "–" if isinstance(n, float) and math.isnan(n) else f"{n / 1e3:,.0f}"


def _signed_pct(d: dict, ref: str) -> str:
    if f"vs_{ref}_diff" not in d:
        return "–"
    diff, ci = d[f"vs_{ref}_diff"], d[f"vs_{ref}_ci95"]
    mark = " *" if d[f"vs_{ref}_distinguishable"] else ""
    return f"{100 * diff:+.1f} ± {_pct(ci)}{mark}"


def _write_differences(root: Path, differences: Sequence[dict]) -> None:
    columns = ["model", "strategy", "target", "epochs"] + [
        f"vs_{ref}_{k}" for ref in ("base", "compound")
        for k in ("pairs", "diff", "ci95", "distinguishable")]
    _write_csv(root / "differences.csv", differences, columns)
    table = _markdown(differences, [
        ("model", lambda r: r["model"]), ("target", lambda r: f"{r['target']:g}x"),
        ("epochs", lambda r: str(r["epochs"])),
        ("vs base (points, 95 % CI)", lambda r: _signed_pct(r, "base")),
        ("vs compound (points, 95 % CI)", lambda r: _signed_pct(r, "compound"))])
    (root / "differences.md").write_text(
        "# Paired differences in test top-1 (same seeds: same data order and augmentation)\n\n"
        + table + "\n`*`: the 95 % interval of the paired difference excludes zero.\n",
        encoding="utf-8")


def plot_learning_curves(rows: Sequence[dict], study_root: str | os.PathLike,
                         out_png: str | os.PathLike) -> Path:
    """Test top-1 against epoch for every model (mean over its seeds), read from each trial's
    ``metrics.jsonl`` (``run_dir`` is relative to ``study_root``). Evidence of convergence:
    a curve still rising at its last epoch has not converged."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .viz import read_metrics

    curves: dict[str, list[list[float]]] = {}
    for r in rows:
        path = Path(study_root) / r["run_dir"] / "metrics.jsonl"
        if path.is_file():
            curves.setdefault(r["model"], []).append([m["test_top1"] for m in read_metrics(path)])
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    strategies = ("base",) + STRATEGIES
    colours = {s: f"C{i}" for i, s in enumerate(strategies)}
    for r in {r["model"]: r for r in rows}.values():
        runs = [c for c in curves.get(r["model"], []) if c]
        if not runs:
            continue
        n = min(len(c) for c in runs)
        mean = [100 * statistics.fmean(c[e] for c in runs) for e in range(n)]
        style = "-" if r["target"] <= 2 else "--"
        ax.plot(range(1, n + 1), mean, style, color=colours.get(r["strategy"], "k"),
                label=r["model"], marker="." if n < 30 else None)
    ax.set(xlabel="epoch", ylabel="test top-1 (%)",
           title="Learning curves (mean over seeds; dashed: targets above 2x)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    out = Path(out_png)
    fig.savefig(out, dpi=100)
    return out


FIGURE4_BASELINES = ((1.0, 1.0), (2.0, 1.0), (1.0, 1.3), (2.0, 1.3))  # (depth, resolution)
FIGURE4_WIDTHS = (1.0, 1.5, 2.0)


def width_per_baseline(base_train, out_dir: str | os.PathLike,
                       baselines: Sequence[tuple[float, float]] = FIGURE4_BASELINES,
                       widths: Sequence[float] = FIGURE4_WIDTHS, seeds: Sequence[int] = (0,),
                       jobs: int = 1, log: Callable[[str], None] = print,
                       executor: concurrent.futures.Executor | None = None) -> list[dict]:
    """The paper's Figure 4 (Observation 2): scale the width of baselines with different
    (depth, resolution) multipliers of the base of ``base_train``; one line per baseline,
    top-1 against FLOPs. The paper finds that width pays more on deeper, larger-resolution
    baselines, which is why the dimensions should be scaled together.

    Writes trials.csv, results.csv, results.md and width_per_baseline.png in ``out_dir``;
    returns the aggregated rows (columns as :func:`compare_scaling`'s, with ``baseline``
    and the multipliers ``d_mult``, ``w_mult``, ``r_mult``).
    """
    root, trials_dir = _study_dirs(out_dir)
    base = _base_model(base_train)
    trials = []
    for d, r in baselines:
        for w in widths:
            config = scale_config(base, depth=d, width=w, resolution=r)
            name = f"d{d:g}-r{r:g}-w{w:g}"
            trials += [Trial(name, seed, _train_config_for(base_train, config, seed,
                                                           trials_dir / f"{name}-seed{seed}"),
                             {"baseline": f"d={d:g}, r={r:g}", "d_mult": d, "w_mult": w,
                              "r_mult": r}) for seed in seeds]
    rows = run_trials(trials, jobs, log, executor)
    keys = ("baseline", "d_mult", "w_mult", "r_mult", "width", "depth", "resolution")
    results = aggregate(rows, keys)
    _write_tables(root, rows, results, keys)
    (root / "results.md").write_text(
        "# Width scaling of different baselines (Tan & Le 2019, Figure 4)\n\n" + _markdown(
            results, [("baseline", lambda r: r["baseline"]),
                      ("width x", lambda r: f"{r['w_mult']:g}"),
                      ("FLOPs (M)", lambda r: f"{r['flops'] / 1e6:.2f}"),
                      ("width / depth / res", lambda r: f"{r['width']:.3g} / {r['depth']:.3g}"
                                                        f" / {r['resolution']}"),
                      ("top-1 % (mean ± 95 % CI)",
                       lambda r: f"{_pct(r['top1_mean'])} ± {_pct(r['top1_ci95'])}"),
                      ("seeds", lambda r: str(r["seeds"])),
                      ("train time (s)", lambda r: f"{r['train_time_s']:.0f}")]),
        encoding="utf-8")
    _plot_lines(results, "baseline", root / "width_per_baseline.png",
                "Width scaling of different baselines (cf. Tan & Le 2019, Fig. 4)")
    return results


def grid_search(base_train, out_dir: str | os.PathLike, candidates: Sequence[tuple] | None = None,
                seeds: Sequence[int] = (0, 1), jobs: int = 1,
                log: Callable[[str], None] = print,
                executor: concurrent.futures.Executor | None = None, *,
                rounds: int = 1) -> list[dict]:
    """§3.3 Step 1 of the paper: with φ = 1, scale the base of ``base_train`` by each
    (α, β, γ) of ``candidates`` (default :func:`grid_candidates`) — depth × α, width × β,
    resolution × γ — train each once per seed with ``base_train``'s (short) recipe, and rank
    by mean top-1.

    ``rounds > 1`` spends the compute where it matters, by successive halving: round r trains
    the candidates still in the race for ``base_train.epochs * 2**r`` epochs, and the better
    half (at least two) goes on to the next round. The final ranking is the last round's.

    Writes trials.csv, rounds.csv (every round's ranking), results.csv and results.md (the
    final ranking with 95 % confidence intervals, the chosen α, β, γ and where the paper's
    (1.2, 1.1, 1.15) ranked in each round it ran); returns the final ranked rows, best first.
    """
    if int(rounds) != rounds or rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds}")
    root, trials_dir = _study_dirs(out_dir)
    base = _base_model(base_train)
    survivors = grid_candidates() if candidates is None else list(candidates)
    if not survivors:
        raise ValueError("no (alpha, beta, gamma) candidate to try")
    keys = ("alpha", "beta", "gamma", "constraint")
    all_rows, ranked_rounds = [], []
    for r in range(rounds):
        epochs = base_train.epochs * 2 ** r
        recipe = dataclasses.replace(base_train, epochs=epochs)
        trials = []
        for a, b, g in survivors:
            config = scale_config(base, depth=a, width=b, resolution=g)
            name = f"a{a:g}-b{b:g}-g{g:g}" + (f"-{epochs}ep" if rounds > 1 else "")
            trials += [Trial(name, seed, _train_config_for(recipe, config, seed,
                                                           trials_dir / f"{name}-seed{seed}"),
                             {"alpha": a, "beta": b, "gamma": g,
                              "constraint": round(a * b * b * g * g, 4)}) for seed in seeds]
        rows = run_trials(trials, jobs, log, executor)
        results = sorted(aggregate(rows, keys), key=lambda row: -row["top1_mean"])
        for rank, row in enumerate(results, 1):
            row.update(rank=rank, round=r + 1)
        all_rows += rows
        ranked_rounds.append(results)
        survivors = [(row["alpha"], row["beta"], row["gamma"])
                     for row in results[:max(2, math.ceil(len(results) / 2))]]
    results = ranked_rounds[-1]
    _write_tables(root, all_rows, results, keys, first=("rank", "model"))
    _write_csv(root / "rounds.csv", [row for rr in ranked_rounds for row in rr],
               ("round", "rank", "model", *keys, *_RESULT_COLUMNS))
    best = results[0]
    table = _markdown(results, [
        ("rank", lambda r: str(r["rank"])), ("α", lambda r: f"{r['alpha']:g}"),
        ("β", lambda r: f"{r['beta']:g}"), ("γ", lambda r: f"{r['gamma']:g}"),
        ("α·β²·γ²", lambda r: f"{r['constraint']:.3f}"),
        ("FLOPs (M)", lambda r: f"{r['flops'] / 1e6:.2f}"),
        ("epochs", lambda r: str(r["epochs"])),
        ("top-1 % (mean ± 95 % CI)",
         lambda r: f"{_pct(r['top1_mean'])} ± {_pct(r['top1_ci95'])}"),
        ("seeds", lambda r: str(r["seeds"]))])
    paper = [f"round {rr[0]['round']} ({rr[0]['epochs']} epochs): rank {row['rank']} of "
             f"{len(rr)}" for rr in ranked_rounds for row in rr
             if (row["alpha"], row["beta"], row["gamma"]) == PAPER_COEFFICIENTS]
    (root / "results.md").write_text(
        "# Grid search for α, β, γ at φ = 1 (Tan & Le 2019, §3.3 Step 1)\n\n" + table +
        f"\nChosen: α = {best['alpha']:g}, β = {best['beta']:g}, γ = {best['gamma']:g} "
        f"(α·β²·γ² = {best['constraint']:.3f}; the paper's: α = 1.2, β = 1.1, γ = 1.15).\n"
        + (f"\nThe paper's (1.2, 1.1, 1.15): {'; '.join(paper)}.\n" if paper else "")
        + (f"\nSuccessive halving over {rounds} rounds: {len(ranked_rounds[0])} candidates at "
           f"{ranked_rounds[0][0]['epochs']} epochs down to {len(results)} at "
           f"{results[0]['epochs']} (rounds.csv).\n" if rounds > 1 else ""),
        encoding="utf-8")
    return results
