"""The studies: :func:`compare_scaling` (Figure 8 / Table 3), :func:`width_per_baseline`
(Figure 4) and :func:`grid_search` (§3.3 Step 1), and the named protocols that set their
defaults."""
from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..errors import BadOptionError
from ..scaling import PAPER_COEFFICIENTS, count_flops
from ..validate import check_count, check_positive
from .reports import (RESULT_COLUMNS, accuracy_columns, choice_metric, markdown_table, pct,
                      plot_accuracy_vs_time, plot_budget_curve, plot_lines, thousands, write_csv,
                      write_differences,
                      write_tables, plot_accuracy_vs_flops, plot_learning_curves,
                      plot_single_dimension, study_footer)
from .solver import (STRATEGIES, candidate_network, grid_candidates, same_networks, scale_config,
                     solve_strategy)
from .stats import aggregate, paired_difference, paired_differences
from .timings import quiet_train_minutes, read_timings
from .trials import TRIAL_FILE, TRIALS_DIR, Trial, base_model, train_config_for, run_trials

# E of protocol v2, from the base's test top-1 against its training budget (one seed, all
# 50k images, studies/cifar10-v2-budget): 5 epochs 63.8 %, 10: 71.3 %, 20: 77.6 %, 40: 81.4 %.
# Still 6.3 points from E to 2E at E = 10: not converged, which is why every 2x model is also
# trained at 2E; E = 20 would double a study of about ten hours on two cores.
V2_EPOCHS = 10
# Protocol v3's validation split: 1,000 of Imagenette's 9,469 training images (100 a class,
# about 10 %), held out of training for every seed and model alike.
V3_VAL_SIZE = 1000
# E of protocol v3, from the base's validation top-1 against its budget (32 px, one seed,
# studies/imagenette64-v3-budget): 5 epochs 60.6 %, 10: 68.8 %, 20: 75.6 %. 6.8 points from E
# to 2E at E = 10: not converged, which is why every model is also trained at 2E; E = 20
# would double a protocol of about thirteen hours on two cores, as it would have for v2.
V3_EPOCHS = 10


# compare_scaling's FLOPs multipliers, and those also trained at its later epoch budgets
# (the base and the 2x models).
TARGETS = (2.0, 4.0)
LONG_TARGETS = (1.0, 2.0)


@dataclass(frozen=True)
class StudyProtocol:
    """A named, documented set of defaults for the studies (``--protocol``).

    ``base``: :class:`~minieffnet.train.TrainConfig` fields of the base network and of the
    recipe every trial shares; ``seeds``: seeds per model (0..seeds-1); ``targets``: FLOPs
    multipliers; ``budgets``: epochs per trial (the first for every model, the others for the
    models whose target is in ``long_targets``, see :func:`compare_scaling`). ``others``: the
    defaults of the other studies on the same base and recipe, by sub-command:
    ``"width-per-baseline"``, ``"grid-search"`` and ``"budget-curve"`` each map to
    ``budgets`` and ``seeds``, the grid search also to ``rounds`` and ``equal_cost``
    (:func:`grid_search`) and ``step`` (:func:`grid_candidates`), the budget curve to
    ``resolutions``
    (:func:`budget_curve`). A ``base`` whose ``dataset`` is None names no data set: the study
    needs ``--dataset`` (a folder of the user's).
    """
    name: str
    summary: str
    base: dict
    seeds: int
    targets: tuple[float, ...]
    budgets: tuple[int, ...]
    long_targets: tuple[float, ...] = LONG_TARGETS
    others: dict = dataclasses.field(default_factory=dict)


PROTOCOLS = {
    "v1": StudyProtocol(
        "v1", "the first CIFAR-scale study: 32 px base (resolution scaling only upsamples), "
        "2 epochs on a class-balanced 5,000-image subset, 2 seeds",
        base=dict(dataset="cifar10", preset="cifar", width=0.25, depth=0.25, resolution=None,
                  train_size=5000, test_size=2000),
        seeds=2, targets=TARGETS, budgets=(2,)),
    "v2": StudyProtocol(
        "v2", "16 px base, so that resolution scaling up to 2x the side (4x the FLOPs) sees "
        "real pixels of the 32 px images; all 50,000 training and 10,000 test images; 3 "
        "paired seeds; every model at E and 2E epochs",
        base=dict(dataset="cifar10", preset="cifar", width=0.25, depth=0.25, resolution=16,
                  train_size=None, test_size=None),
        seeds=3, targets=TARGETS, budgets=(V2_EPOCHS, 2 * V2_EPOCHS),
        # The 4x models joined 2E after the study's first 42 trials, so that the ranking's
        # dependence on the training length is measured at both targets.
        long_targets=(1.0, *TARGETS),
        # Figure 4's twelve networks cost ~58 base networks (widths 1, 1.5, 2 on baselines of
        # 1, 2, 1.7, 3.4 base FLOPs): one seed at E, as the issue allows. The grid: step 0.1
        # gives 22 candidates (0.05: 111) and the paper's point is added to them, 17 different
        # networks on this base; successive halving at 2, 4, 8 epochs spends about as much on
        # each round (~1.2 h each on two cores).
        others={"width-per-baseline": dict(budgets=(V2_EPOCHS,), seeds=1),
                "grid-search": dict(budgets=(2,), seeds=2, rounds=3, step=0.1)}),
    "v3": StudyProtocol(
        "v3", "your own image folder (--dataset folder:PATH; made for Imagenette at 64 px) "
        "and a 32 px base, so that resolution scaling to 2x and 4x the FLOPs (45, 64 px) sees "
        "real pixels; a fixed class-balanced validation split of 1,000 training images makes "
        "every choice (the test set is evaluated once, after each trial's last epoch); 3 "
        "paired seeds; every model at E and 2E epochs",
        base=dict(dataset=None, preset="cifar", width=0.25, depth=0.25, resolution=32,
                  train_size=None, test_size=None, val_size=V3_VAL_SIZE, final_test=True),
        seeds=3, targets=TARGETS, budgets=(V3_EPOCHS, 2 * V3_EPOCHS),
        long_targets=(1.0, *TARGETS),
        # The budget curve: the base at three input sides (24 px below it, 45 px at 2x its
        # FLOPs) and four budgets, one seed: E is chosen on its validation curve, and the
        # three sides show whether the 32 px base is starved of resolution.
        # The grid: ranked on validation, 3 seeds, every candidate re-solved to 2x the base's
        # FLOPs ±2 % (rounding alone spread v2's candidates over 1.4-2.5x).
        others={"budget-curve": dict(budgets=(5, 10, 20, 40), seeds=1,
                                     resolutions=(24, 32, 45)),
                "grid-search": dict(budgets=(2,), seeds=3, rounds=3, step=0.1,
                                    equal_cost=0.02)}),
}


def _study_dirs(out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """The study folder and its trials folder, both made by :func:`_open_study` only once
    every network of the study is built: a study refused for its arguments leaves nothing."""
    root = Path(out_dir)
    return root, root / TRIALS_DIR


def _open_study(trials_dir: Path, report_only: bool) -> None:
    """Make the trials folder to train in; with ``report_only`` refuse a folder that has none
    (a report reads a study, it must not create one)."""
    root = trials_dir.parent
    if root.exists() and not root.is_dir():
        raise BadOptionError(f"{root} is a file, not a study folder")
    if not report_only:
        trials_dir.mkdir(parents=True, exist_ok=True)
    elif not trials_dir.is_dir():
        raise BadOptionError(f"no study at {root} (it has no {TRIALS_DIR} folder): no "
                             "finished trial to report")


# --- the studies -------------------------------------------------------------------------------
def _finished(trials: Sequence[Trial]) -> list[Trial]:
    """The trials of ``trials`` whose record is written (``report_only``: table these, train
    nothing)."""
    return [t for t in trials if (t.run_dir / TRIAL_FILE).is_file()]


def _partial_note(finished: int, planned: int, what: str = "the study's") -> str:
    """results.md's first line when only ``finished`` of ``planned`` trials are tabled."""
    return (f"Partial: {finished} of {what} {planned} trials have finished.\n\n"
            if finished < planned else "")


def _run_study(trials: Sequence[Trial], trials_dir: Path, jobs: int,
               log: Callable[[str], None], executor: concurrent.futures.Executor | None,
               report_only: bool) -> tuple[list[dict], str]:
    """Train ``trials`` (skipping the finished ones), or with ``report_only`` only read the
    finished ones; returns their rows and results.md's partial note (empty when every
    planned trial is in)."""
    _open_study(trials_dir, report_only)
    planned = len(trials)
    if report_only:
        trials = _finished(trials)
        if not trials:
            raise ValueError(f"{trials_dir} holds no finished trial of this study to report")
    rows = run_trials(trials, jobs, log, executor)
    return rows, _partial_note(len(rows), planned)


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
                    targets: Sequence[float] = TARGETS, seeds: Sequence[int] = (0, 1, 2),
                    strategies: Sequence[str] = STRATEGIES,
                    coefficients: tuple[float, float, float] = PAPER_COEFFICIENTS,
                    jobs: int = 1, log: Callable[[str], None] = print,
                    executor: concurrent.futures.Executor | None = None, *,
                    budgets: Sequence[int] | None = None,
                    long_targets: Sequence[float] = LONG_TARGETS,
                    report_only: bool = False) -> list[dict]:
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
    ``report_only``: train nothing; write the tables and figures from the trials already
    finished (a study still running, or stopped part-way), and say in results.md how many
    of the study's trials they are.
    """
    budgets = tuple(budgets) if budgets is not None else (base_train.epochs,)
    if not budgets or any(int(e) != e or e < 1 for e in budgets):
        raise BadOptionError(f"budgets must be positive whole epochs, got {budgets}")
    for name, values in (("targets", targets), ("long_targets", long_targets)):
        for value in values:
            check_positive(name, value)
    root, trials_dir = _study_dirs(out_dir)
    base = base_model(base_train)
    models = [("base", "base", 1.0, base)]
    for target in targets:
        for strategy in strategies:
            config = solve_strategy(base, strategy, target, *coefficients)
            models.append((f"{strategy}-x{target:g}", strategy, float(target), config))
    base_flops = count_flops(base)
    trials = [Trial(name, seed, train_config_for(dataclasses.replace(base_train, epochs=epochs),
                                                 config, seed,
                                                 trials_dir / f"{name}-seed{seed}"),
                    {"strategy": strategy, "target": target,
                     "flops_ratio": round(count_flops(config) / base_flops, 4)})
              for name, strategy, target, config, epochs in
              _models_at_budgets(models, budgets, long_targets) for seed in seeds]
    rows, partial = _run_study(trials, trials_dir, jobs, log, executor, report_only)
    keys = ("strategy", "target", "flops_ratio", "width", "depth", "resolution")
    results = aggregate(rows, keys)
    timings = read_timings(root)  # written by time_study (--time), on an idle machine
    if timings:
        minutes = quiet_train_minutes(rows, root, timings)
        for r in results:
            r["quiet_train_min"] = minutes.get(r["model"], math.nan)
    write_tables(root, rows, results, keys)
    table = markdown_table(results, [
        ("model", lambda r: r["model"]),
        ("strategy", lambda r: r["strategy"]), ("target", lambda r: f"{r['target']:g}x"),
        ("epochs", lambda r: str(r["epochs"])),
        ("FLOPs (M)", lambda r: f"{r['flops'] / 1e6:.2f} ({r['flops_ratio']:.3f}x)"),
        ("params", lambda r: f"{r['params']:,}"),
        ("activations (k/img)", lambda r: thousands(r["activations"])),
        ("width / depth / res", lambda r: f"{r['width']:.3g} / {r['depth']:.3g} / "
                                          f"{r['resolution']}"),
        *accuracy_columns(results),
        ("seeds", lambda r: str(r["seeds"])),
        ("train time (s)", lambda r: f"{r['train_time_s']:.0f}"),
        *([("quiet time (min)", lambda r: f"{r.get('quiet_train_min', math.nan):.1f}")]
          if timings else [])])
    (root / "results.md").write_text(
        "# Scaling strategies at equal FLOPs (Tan & Le 2019, Figure 8 / Table 3)\n\n"
        + partial + table + study_footer(rows, trials_dir), encoding="utf-8")
    differences = paired_differences(rows)
    write_differences(root, differences)
    for i, epochs in enumerate(budgets):
        at = [r for r in results if r["epochs"] == epochs]
        if any(r["strategy"] != "base" for r in at):
            suffix = "" if i == 0 else f"_{epochs}ep"
            plot_accuracy_vs_flops(at, root / f"accuracy_vs_flops{suffix}.png")
            if i == 0:
                plot_single_dimension(at, root / "single_dimension.png")
    plot_learning_curves(rows, root, root / "learning_curves.png")
    if timings:
        plot_accuracy_vs_time(results, root / "accuracy_vs_time.png")
    return results


FIGURE4_BASELINES = ((1.0, 1.0), (2.0, 1.0), (1.0, 1.3), (2.0, 1.3))  # (depth, resolution)
FIGURE4_WIDTHS = (1.0, 1.5, 2.0)


def width_per_baseline(base_train, out_dir: str | os.PathLike,
                       baselines: Sequence[tuple[float, float]] = FIGURE4_BASELINES,
                       widths: Sequence[float] = FIGURE4_WIDTHS, seeds: Sequence[int] = (0,),
                       jobs: int = 1, log: Callable[[str], None] = print,
                       executor: concurrent.futures.Executor | None = None, *,
                       report_only: bool = False) -> list[dict]:
    """The paper's Figure 4 (Observation 2): scale the width of baselines with different
    (depth, resolution) multipliers of the base of ``base_train``; one line per baseline,
    top-1 against FLOPs. The paper finds that width pays more on deeper, larger-resolution
    baselines, which is why the dimensions should be scaled together.

    Writes trials.csv, results.csv, results.md and width_per_baseline.png in ``out_dir``;
    returns the aggregated rows (columns as :func:`compare_scaling`'s, with ``baseline``
    and the multipliers ``d_mult``, ``w_mult``, ``r_mult``). ``report_only``: as in
    :func:`compare_scaling`.
    """
    for name, values in (("baselines", [m for pair in baselines for m in pair]),
                         ("widths", widths)):
        for value in values:
            check_positive(name, value)
    root, trials_dir = _study_dirs(out_dir)
    base = base_model(base_train)
    trials = []
    for d, r in baselines:
        for w in widths:
            config = scale_config(base, depth=d, width=w, resolution=r)
            name = f"d{d:g}-r{r:g}-w{w:g}"
            trials += [Trial(name, seed, train_config_for(base_train, config, seed,
                                                          trials_dir / f"{name}-seed{seed}"),
                             {"baseline": f"d={d:g}, r={r:g}", "d_mult": d, "w_mult": w,
                              "r_mult": r}) for seed in seeds]
    rows, partial = _run_study(trials, trials_dir, jobs, log, executor, report_only)
    keys = ("baseline", "d_mult", "w_mult", "r_mult", "width", "depth", "resolution")
    results = aggregate(rows, keys)
    write_tables(root, rows, results, keys)
    (root / "results.md").write_text(
        "# Width scaling of different baselines (Tan & Le 2019, Figure 4)\n\n"
        + partial + markdown_table(
            results, [("model", lambda r: r["model"]), ("baseline", lambda r: r["baseline"]),
                      ("width x", lambda r: f"{r['w_mult']:g}"),
                      ("FLOPs (M)", lambda r: f"{r['flops'] / 1e6:.2f}"),
                      ("width / depth / res", lambda r: f"{r['width']:.3g} / {r['depth']:.3g}"
                                                        f" / {r['resolution']}"),
                      *accuracy_columns(results),
                      ("seeds", lambda r: str(r["seeds"])),
                      ("train time (s)", lambda r: f"{r['train_time_s']:.0f}")])
        + study_footer(rows, trials_dir), encoding="utf-8")
    plot_lines(results, "baseline", root / "width_per_baseline.png",
               "Width scaling of different baselines (cf. Tan & Le 2019, Fig. 4)")
    return results


def _grid_name(alpha: float, beta: float, gamma: float) -> str:
    return f"a{alpha:g}-b{beta:g}-g{gamma:g}"


def _abg(row: dict) -> tuple[float, float, float]:
    return row["alpha"], row["beta"], row["gamma"]


def _margin(rows: Sequence[dict], metric: str, a: tuple, b: tuple) -> dict:
    """Candidate ``a``'s ``metric`` minus ``b``'s, paired by seed over trial ``rows`` of one
    round (:func:`~.stats.paired_difference`)."""
    def scores(abg):
        return {r["seed"]: r[metric] for r in rows if _abg(r) == abg}
    return paired_difference(scores(a), scores(b))


def _margin_lines(ranked_rounds: Sequence[list[dict]], round_rows: Sequence[list[dict]],
                  metric: str) -> str:
    """results.md's lines on the winner's margin over the runner-up (last round) and over the
    paper's point (the last round it ran in), paired by seed with 95 % intervals."""
    def line(what: str, r: int, other: tuple) -> str:
        d = _margin(round_rows[r], metric, _abg(ranked_rounds[-1][0]), other)
        return (f"- winner − {what} (round {r + 1}, {ranked_rounds[r][0]['epochs']} epochs, "
                f"{d['pairs']} paired seeds): {100 * d['diff']:+.2f} ± {pct(d['ci95'])} points"
                f"{' (distinguishable)' if d['distinguishable'] else ' (not distinguishable)'}")
    final = ranked_rounds[-1]
    lines = [line("runner-up", len(ranked_rounds) - 1, _abg(final[1]))] if len(final) > 1 else []
    paper = [r for r, rr in enumerate(ranked_rounds)
             if any(_abg(row) == PAPER_COEFFICIENTS for row in rr)]
    if paper and _abg(final[0]) != PAPER_COEFFICIENTS:
        lines.append(line("the paper's (1.2, 1.1, 1.15)", paper[-1], PAPER_COEFFICIENTS))
    name = "validation" if metric == "val_top1" else "test"
    return (f"\nMargins in {name} top-1:\n" + "\n".join(lines) + "\n") if lines else ""


def grid_search(base_train, out_dir: str | os.PathLike, candidates: Sequence[tuple] | None = None,
                seeds: Sequence[int] = (0, 1), jobs: int = 1,
                log: Callable[[str], None] = print,
                executor: concurrent.futures.Executor | None = None, *,
                rounds: int = 1, phi: float = 1.0, equal_cost: float | None = None,
                report_only: bool = False) -> list[dict]:
    """§3.3 Step 1 of the paper: with φ = 1, scale the base of ``base_train`` by each
    (α, β, γ) of ``candidates`` (default :func:`grid_candidates`) — depth × α, width × β,
    resolution × γ — train each once per seed with ``base_train``'s (short) recipe, and rank
    by mean top-1 (validation top-1 when ``base_train`` holds a validation split out).
    Candidates that scale to the same network are trained once, under one name
    (:func:`same_networks`); the tables list the others in ``same_network_as``.

    ``equal_cost`` (e.g. 0.02): φ is re-solved per candidate so that every network costs
    2^phi times the base's FLOPs within ±equal_cost (:func:`candidate_network`); the
    candidates rounding leaves no such network for are left out, and results.md names them.
    ``phi``: the compound coefficient (2 tests the paper's Step 2 on a few candidates: does
    the φ = 1 choice stay best at four times the FLOPs?).

    ``rounds > 1`` spends the compute where it matters, by successive halving: round r trains
    the candidates still in the race for ``base_train.epochs * 2**r`` epochs, and the better
    half (at least two) goes on to the next round. The final ranking is the last round's.

    ``report_only``: train nothing; rank the finished trials of every round that has any,
    up to the first round not yet complete (which of its candidates go on is not known
    before it ends), and say in results.md which round that is and how far it got.

    Writes trials.csv, rounds.csv (every round's ranking), results.csv and results.md (the
    final ranking with 95 % confidence intervals and each network's FLOPs against the
    base's, the chosen α, β, γ, where the paper's (1.2, 1.1, 1.15) ranked in each round it
    ran, and the winner's paired margins over the runner-up and the paper's point); returns
    the final ranked rows, best first.
    """
    if int(rounds) != rounds or rounds < 1:
        raise BadOptionError(f"rounds must be a positive integer, got {rounds}")
    check_positive("phi", phi)
    if equal_cost is not None and not 0 < check_positive("equal_cost", equal_cost) < 1:
        raise BadOptionError(f"equal_cost must be a tolerance in (0, 1), got {equal_cost!r}")
    root, trials_dir = _study_dirs(out_dir)
    base = base_model(base_train)
    base_flops = count_flops(base)
    pool = grid_candidates() if candidates is None else [tuple(c) for c in candidates]
    networks, unreachable = {}, []
    for abg in pool:
        try:
            networks[abg] = candidate_network(base, abg, phi, equal_cost)
        except ValueError:
            unreachable.append(abg)
    same_as = same_networks(base, list(networks), networks.__getitem__)
    survivors = list(same_as)
    if not survivors:
        raise ValueError("no (alpha, beta, gamma) candidate to try")
    _open_study(trials_dir, report_only)
    log(f"{sum(1 + len(v) for v in same_as.values())} candidates scale the base to "
        f"{len(survivors)} different networks"
        + (f"; {len(unreachable)} reach no network at {2 ** phi:g}x the FLOPs ±"
           f"{100 * equal_cost:g} %" if unreachable else ""))
    suffix = f"-phi{phi:g}" if phi != 1 else ""
    keys = ("alpha", "beta", "gamma", "constraint")
    all_rows, ranked_rounds, round_rows, partial = [], [], [], ""
    for r in range(rounds):
        epochs = base_train.epochs * 2 ** r
        recipe = dataclasses.replace(base_train, epochs=epochs)
        trials = []
        for a, b, g in survivors:
            name = _grid_name(a, b, g) + suffix + (f"-{epochs}ep" if rounds > 1 else "")
            trials += [Trial(name, seed, train_config_for(recipe, networks[a, b, g], seed,
                                                          trials_dir / f"{name}-seed{seed}"),
                             {"alpha": a, "beta": b, "gamma": g,
                              "constraint": round(a * b * b * g * g, 4)}) for seed in seeds]
        planned = len(trials)
        if report_only:
            trials = _finished(trials)
            if not trials:
                partial = (f"Partial: round {r + 1} of {rounds} ({epochs} epochs) has no "
                           f"finished trial yet; the ranking is round {r}'s.\n\n")
                break
        rows = run_trials(trials, jobs, log, executor)
        # Ranked on validation where the study holds a split out (the test set is reported,
        # never chosen on), else on test top-1 as the studies without one were.
        metric = choice_metric(rows)
        results = sorted(aggregate(rows, keys), key=lambda row: -row[f"{metric}_mean"])
        for rank, row in enumerate(results, 1):
            row.update(rank=rank, round=r + 1, flops_ratio=round(row["flops"] / base_flops, 4),
                       same_network_as=" ".join(_grid_name(*abg) for abg in same_as[_abg(row)]))
        all_rows += rows
        ranked_rounds.append(results)
        round_rows.append(rows)
        partial = _partial_note(len(rows), planned, f"round {r + 1}'s")
        if partial:
            break
        survivors = [_abg(row) for row in results[:max(2, math.ceil(len(results) / 2))]]
    if not ranked_rounds:
        raise ValueError(f"{trials_dir} holds no finished trial of this search to report")
    results = ranked_rounds[-1]
    write_tables(root, all_rows, results, keys, first=("rank", "model"),
                 last=("flops_ratio", "same_network_as"))
    write_csv(root / "rounds.csv", [row for rr in ranked_rounds for row in rr],
              ("round", "rank", "model", *keys, *RESULT_COLUMNS, "flops_ratio",
               "same_network_as"))
    best = results[0]
    table = markdown_table(results, [
        ("rank", lambda r: str(r["rank"])), ("model", lambda r: r["model"]),
        ("α", lambda r: f"{r['alpha']:g}"),
        ("β", lambda r: f"{r['beta']:g}"), ("γ", lambda r: f"{r['gamma']:g}"),
        ("α·β²·γ²", lambda r: f"{r['constraint']:.3f}"),
        ("FLOPs (M)", lambda r: f"{r['flops'] / 1e6:.2f} ({r['flops_ratio']:.2f}x)"),
        ("epochs", lambda r: str(r["epochs"])),
        *accuracy_columns(results),
        ("seeds", lambda r: str(r["seeds"])),
        ("same network as", lambda r: r["same_network_as"] or "–")])
    paper = [f"round {rr[0]['round']} ({rr[0]['epochs']} epochs): rank {row['rank']} of "
             f"{len(rr)}" for rr in ranked_rounds for row in rr
             if _abg(row) == PAPER_COEFFICIENTS]
    cost = (f"every network solved to {2 ** phi:g}x the base's FLOPs ±{100 * equal_cost:g} %"
            if equal_cost is not None else
            f"the networks as the coefficients scale them at φ = {phi:g}, before rounding "
            f"{2 ** phi:g}x the base's FLOPs")
    (root / "results.md").write_text(
        f"# Grid search for α, β, γ at φ = {phi:g} (Tan & Le 2019, §3.3 Step "
        f"{1 if phi == 1 else 2})\n\nCost: {cost}.\n\n" + partial + table
        + f"\n{'Best so far' if partial else 'Chosen'}: α = {best['alpha']:g}, "
        f"β = {best['beta']:g}, γ = {best['gamma']:g} "
        f"(α·β²·γ² = {best['constraint']:.3f}; the paper's: α = 1.2, β = 1.1, γ = 1.15).\n"
        + (f"\nThe paper's (1.2, 1.1, 1.15): {'; '.join(paper)}.\n" if paper else "")
        + _margin_lines(ranked_rounds, round_rows, choice_metric(all_rows))
        + (f"\nSuccessive halving over {rounds} rounds: {len(ranked_rounds[0])} candidates at "
           f"{ranked_rounds[0][0]['epochs']} epochs down to {len(results)} at "
           f"{results[0]['epochs']} (rounds.csv).\n" if rounds > 1 and not partial else "")
        + (f"\nNo network within ±{100 * equal_cost:g} % of {2 ** phi:g}x the FLOPs (left "
           "out): " + ", ".join(f"({a:g}, {b:g}, {g:g})" for a, b, g in unreachable) + ".\n"
           if unreachable else "")
        + study_footer(all_rows, trials_dir), encoding="utf-8")
    return results


def budget_curve(base_train, out_dir: str | os.PathLike, budgets: Sequence[int] = (5, 10, 20, 40),
                 resolutions: Sequence[int] | None = None, seeds: Sequence[int] = (0,),
                 jobs: int = 1, log: Callable[[str], None] = print,
                 executor: concurrent.futures.Executor | None = None, *,
                 report_only: bool = False) -> list[dict]:
    """The base network of ``base_train`` trained for each of ``budgets`` epochs at each
    input side of ``resolutions`` (default: the base's own): the curve a protocol's E is
    chosen on (validation top-1 when ``base_train`` holds a validation split out), and
    whether the base is starved of resolution (a side above the base's that gains a lot at
    every budget says so, as the paper's Figure 3 flattens above its base).

    Writes trials.csv, results.csv, results.md and budget_curve.png (top-1 against epochs,
    one line per side) in ``out_dir``; returns the aggregated rows (columns as
    :func:`compare_scaling`'s). ``report_only``: as in :func:`compare_scaling`.
    """
    if not budgets or any(int(e) != e or e < 1 for e in budgets):
        raise BadOptionError(f"budgets must be positive whole epochs, got {budgets}")
    for resolution in resolutions or ():
        check_count("resolutions", resolution)
    root, trials_dir = _study_dirs(out_dir)
    base = base_model(base_train)
    trials = []
    for resolution in resolutions or (base.resolution,):
        config = dataclasses.replace(base, resolution=int(resolution))
        for epochs in budgets:
            name = f"r{resolution}-{epochs}ep"
            recipe = dataclasses.replace(base_train, epochs=epochs)
            trials += [Trial(name, seed, train_config_for(recipe, config, seed,
                                                          trials_dir / f"{name}-seed{seed}"),
                             {"flops_ratio": round(count_flops(config) / count_flops(base),
                                                   4)})
                       for seed in seeds]
    rows, partial = _run_study(trials, trials_dir, jobs, log, executor, report_only)
    keys = ("resolution", "flops_ratio")
    results = aggregate(rows, keys)
    write_tables(root, rows, results, keys)
    (root / "results.md").write_text(
        "# The base's accuracy against its training budget and input resolution\n\n"
        + partial + markdown_table(
            results, [("model", lambda r: r["model"]),
                      ("resolution", lambda r: f"{r['resolution']}"),
                      ("epochs", lambda r: str(r["epochs"])),
                      ("FLOPs (M)", lambda r: f"{r['flops'] / 1e6:.2f} "
                                              f"({r['flops_ratio']:.3g}x)"),
                      *accuracy_columns(results),
                      ("seeds", lambda r: str(r["seeds"])),
                      ("train time (s)", lambda r: f"{r['train_time_s']:.0f}")])
        + study_footer(rows, trials_dir), encoding="utf-8")
    plot_budget_curve(results, root / "budget_curve.png")
    return results
