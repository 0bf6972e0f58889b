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

from .scaling import PRESETS, EfficientNetConfig, count_flops, count_parameters, make_config

STRATEGIES = ("depth", "width", "resolution", "compound")
PAPER_COEFFICIENTS = (1.2, 1.1, 1.15)  # α, β, γ found by the paper's grid search (§3.3)
FLOPS_TOLERANCE = 0.05                 # the solved FLOPs must be within ±5 % of the target
TRIAL_FILE = "trial.json"
TRIALS_DIR = "trials"

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


def run_trial(trial: Trial, progress: bool = False) -> dict:
    """Train ``trial`` unless finished; return its result row (also in ``trial.json``).

    Finished (``trial.json`` present): read back, after checking it is this trial's. Interrupted
    (a checkpoint but no ``trial.json``): resumed from the checkpoint. Otherwise trained from
    scratch (replacing the leftovers of a run that never saved a checkpoint).
    """
    from .train import CHECKPOINT_FILE, Trainer, train_config_differences, TrainConfig
    done = trial.run_dir / TRIAL_FILE
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
    row = {"model": trial.model, "seed": trial.seed, **trial.info,
           "flops": count_flops(net), "params": count_parameters(net),
           "width": net.width, "depth": net.depth, "resolution": net.resolution,
           "top1": last["test_top1"], "top5": last["test_top5"],
           "train_time_s": last["elapsed_s"], "run_dir": str(trial.run_dir),
           "train_config": trial.train.to_dict()}
    tmp = done.with_name(f".{TRIAL_FILE}.tmp")
    tmp.write_text(json.dumps(row, indent=1), encoding="utf-8")
    os.replace(tmp, done)
    return {**row, "trained": True}


def run_trials(trials: Sequence[Trial], jobs: int = 1,
               log: Callable[[str], None] = print,
               executor: concurrent.futures.Executor | None = None) -> list[dict]:
    """Run every trial (see :func:`run_trial`), ``jobs`` at a time in separate processes, or
    on ``executor`` when given (any :class:`concurrent.futures.Executor`, e.g. a Dask
    cluster's ``distributed.Client(address).get_executor()``: trials are independent and
    resumable, so an existing engine schedules them; see :func:`dask_executor`).

    Processes are started with ``spawn``: Numba's threading layer is not safe to fork once it
    has run. Results come back in the order of ``trials``; each row has ``trained`` telling
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
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
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
    FLOPs, params, seeds, top-1 mean / std / 95 % CI and mean training time."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["model"], []).append(r)
    out = []
    for model, trials in groups.items():
        mean, std, ci = mean_std_ci([t["top1"] for t in trials])
        out.append({"model": model, **{k: trials[0][k] for k in keys},
                    "flops": trials[0]["flops"], "params": trials[0]["params"],
                    "seeds": len(trials), "top1_mean": mean, "top1_std": std, "top1_ci95": ci,
                    "train_time_s": statistics.fmean(t["train_time_s"] for t in trials)})
    return out


def _write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    base = [r for r in rows if r["strategy"] == "base"]
    for strategy in STRATEGIES:
        points = sorted(base + [r for r in rows if r["strategy"] == strategy],
                        key=lambda r: r["flops"])
        if len(points) == len(base):
            continue
        ax.errorbar([r["flops"] / 1e6 for r in points], [100 * r["top1_mean"] for r in points],
                    yerr=[0 if math.isnan(r["top1_std"]) else 100 * r["top1_std"]
                          for r in points], marker="o", capsize=3, label=f"scale by {strategy}")
    ax.set(xlabel="FLOPs (M multiply-adds)", ylabel="test top-1 (%)",
           title="Scaling strategies at equal FLOPs (cf. Tan & Le 2019, Fig. 8)")
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
def compare_scaling(base_train, out_dir: str | os.PathLike,
                    targets: Sequence[float] = (2.0, 4.0), seeds: Sequence[int] = (0, 1, 2),
                    strategies: Sequence[str] = STRATEGIES,
                    coefficients: tuple[float, float, float] = PAPER_COEFFICIENTS,
                    jobs: int = 1, log: Callable[[str], None] = print,
                    executor: concurrent.futures.Executor | None = None) -> list[dict]:
    """Figure 8 / Table 3 of the paper: the base network of ``base_train`` (a
    :class:`~minieffnet.train.TrainConfig`, whose recipe every trial shares) and, for each
    target FLOPs multiplier and strategy, the network :func:`solve_strategy` finds, each trained
    once per seed. Writes trials.csv, results.csv, results.md, accuracy_vs_flops.png and
    single_dimension.png in
    ``out_dir``; returns the aggregated rows (columns: model, strategy, target, flops_ratio,
    width, depth, resolution, flops, params, seeds, top1_mean/std/ci95, train_time_s).

    All networks are solved before anything trains, so an unreachable target fails at once.
    """
    root, trials_dir = _study_dirs(out_dir)
    base = _base_model(base_train)
    models = [("base", "base", 1.0, base)]
    for target in targets:
        for strategy in strategies:
            config = solve_strategy(base, strategy, target, *coefficients)
            models.append((f"{strategy}-x{target:g}", strategy, float(target), config))
    base_flops = count_flops(base)
    trials = [Trial(name, seed, _train_config_for(base_train, config, seed,
                                                  trials_dir / f"{name}-seed{seed}"),
                    {"strategy": strategy, "target": target,
                     "flops_ratio": round(count_flops(config) / base_flops, 4)})
              for name, strategy, target, config in models for seed in seeds]
    rows = run_trials(trials, jobs, log, executor)
    keys = ("strategy", "target", "flops_ratio", "width", "depth", "resolution")
    results = aggregate(rows, keys)
    _write_csv(root / "trials.csv", rows, ("model", "seed", *keys, "flops", "params", "top1",
                                           "top5", "train_time_s", "run_dir"))
    _write_csv(root / "results.csv", results, ("model", *keys, "flops", "params", "seeds",
                                               "top1_mean", "top1_std", "top1_ci95",
                                               "train_time_s"))
    table = _markdown(results, [
        ("strategy", lambda r: r["strategy"]), ("target", lambda r: f"{r['target']:g}x"),
        ("FLOPs (M)", lambda r: f"{r['flops'] / 1e6:.2f} ({r['flops_ratio']:.3f}x)"),
        ("params", lambda r: f"{r['params']:,}"),
        ("width / depth / res", lambda r: f"{r['width']:.3g} / {r['depth']:.3g} / "
                                          f"{r['resolution']}"),
        ("top-1 % (mean ± std)", lambda r: f"{_pct(r['top1_mean'])} ± {_pct(r['top1_std'])}"),
        ("seeds", lambda r: str(r["seeds"])),
        ("train time (s)", lambda r: f"{r['train_time_s']:.0f}")])
    (root / "results.md").write_text(
        "# Scaling strategies at equal FLOPs (Tan & Le 2019, Figure 8 / Table 3)\n\n" + table,
        encoding="utf-8")
    plot_accuracy_vs_flops(results, root / "accuracy_vs_flops.png")
    plot_single_dimension(results, root / "single_dimension.png")
    return results


def grid_search(base_train, out_dir: str | os.PathLike, candidates: Sequence[tuple] | None = None,
                seeds: Sequence[int] = (0, 1), jobs: int = 1,
                log: Callable[[str], None] = print,
                executor: concurrent.futures.Executor | None = None) -> list[dict]:
    """§3.3 Step 1 of the paper: with φ = 1, scale the base of ``base_train`` by each
    (α, β, γ) of ``candidates`` (default :func:`grid_candidates`) — depth × α, width × β,
    resolution × γ — train each once per seed with ``base_train``'s (short) recipe, and rank
    by mean top-1. Writes trials.csv, results.csv and results.md (ranked, with 95 % confidence
    intervals, and the chosen α, β, γ); returns the ranked rows, best first.
    """
    root, trials_dir = _study_dirs(out_dir)
    base = _base_model(base_train)
    candidates = grid_candidates() if candidates is None else list(candidates)
    if not candidates:
        raise ValueError("no (alpha, beta, gamma) candidate to try")
    trials = []
    for a, b, g in candidates:
        config = scale_config(base, depth=a, width=b, resolution=g)
        name = f"a{a:g}-b{b:g}-g{g:g}"
        trials += [Trial(name, seed, _train_config_for(base_train, config, seed,
                                                       trials_dir / f"{name}-seed{seed}"),
                         {"alpha": a, "beta": b, "gamma": g,
                          "constraint": round(a * b * b * g * g, 4)}) for seed in seeds]
    rows = run_trials(trials, jobs, log, executor)
    keys = ("alpha", "beta", "gamma", "constraint")
    results = sorted(aggregate(rows, keys), key=lambda r: -r["top1_mean"])
    for rank, r in enumerate(results, 1):
        r["rank"] = rank
    _write_csv(root / "trials.csv", rows, ("model", "seed", *keys, "flops", "params", "top1",
                                           "top5", "train_time_s", "run_dir"))
    _write_csv(root / "results.csv", results, ("rank", "model", *keys, "flops", "params",
                                               "seeds", "top1_mean", "top1_std", "top1_ci95",
                                               "train_time_s"))
    best = results[0]
    table = _markdown(results, [
        ("rank", lambda r: str(r["rank"])), ("α", lambda r: f"{r['alpha']:g}"),
        ("β", lambda r: f"{r['beta']:g}"), ("γ", lambda r: f"{r['gamma']:g}"),
        ("α·β²·γ²", lambda r: f"{r['constraint']:.3f}"),
        ("FLOPs (M)", lambda r: f"{r['flops'] / 1e6:.2f}"),
        ("top-1 % (mean ± 95 % CI)",
         lambda r: f"{_pct(r['top1_mean'])} ± {_pct(r['top1_ci95'])}"),
        ("seeds", lambda r: str(r["seeds"]))])
    (root / "results.md").write_text(
        "# Grid search for α, β, γ at φ = 1 (Tan & Le 2019, §3.3 Step 1)\n\n" + table +
        f"\nChosen: α = {best['alpha']:g}, β = {best['beta']:g}, γ = {best['gamma']:g} "
        f"(α·β²·γ² = {best['constraint']:.3f}; the paper's: α = 1.2, β = 1.1, γ = 1.15).\n",
        encoding="utf-8")
    return results
