"""What a study writes: CSV and Markdown tables, and the paper's figures (Figure 8, Figure 3,
Figure 4 and learning curves)."""
from __future__ import annotations

import csv
import math
import os
import statistics
from pathlib import Path
from typing import Callable, Sequence

from ..viz import figure, read_metrics, save
from .solver import STRATEGIES


TEXT_COLUMNS = ("model", "strategy", "baseline", "same_network_as", "code_version")


def read_results(path: str | os.PathLike) -> list[dict]:
    """The rows of a study's CSV (results.csv, trials.csv, ...): numbers as floats where they
    parse, the text columns (:data:`TEXT_COLUMNS`) and blanks as written."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key, value in row.items():
            if key not in TEXT_COLUMNS:
                try:
                    row[key] = float(value)
                except (TypeError, ValueError):
                    pass
    return rows


def write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> None:
    """``rows`` as CSV with the given ``columns`` (other keys are left out)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


TRIAL_COLUMNS = ("epochs", "flops", "params", "activations", "top1", "top5", "val_top1",
                 "train_top1", "train_time_s", "code_version", "run_dir")
RESULT_COLUMNS = ("epochs", "flops", "params", "activations", "seeds", "top1_mean",
                  "top1_std", "top1_ci95", "val_top1_mean", "val_top1_std", "val_top1_ci95",
                  "train_top1_mean", "train_time_s", "quiet_train_min")


def write_tables(root: Path, rows: Sequence[dict], results: Sequence[dict],
                 keys: Sequence[str], first: Sequence[str] = ("model",),
                 last: Sequence[str] = ()) -> None:
    """trials.csv (one row per trial) and results.csv (one per model, :func:`aggregate`),
    with the study's own ``keys`` columns after the model's name (and results.csv's ``last``
    columns at the end)."""
    write_csv(root / "trials.csv", rows, ("model", "seed", *keys, *TRIAL_COLUMNS))
    write_csv(root / "results.csv", results, (*first, *keys, *RESULT_COLUMNS, *last))


def pct(x: float) -> str:
    """A fraction as a percentage with one decimal, "–" for NaN."""
    return "–" if math.isnan(x) else f"{100 * x:.1f}"


def markdown_table(rows: Sequence[dict],
                   columns: Sequence[tuple[str, Callable[[dict], str]]]) -> str:
    """A Markdown table: one ``(header, row -> cell text)`` pair per column."""
    lines = ["| " + " | ".join(h for h, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(f(r) for _, f in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def study_footer(rows: Sequence[dict], trials_dir: str | os.PathLike) -> str:
    """The lines under a study's results table: how to rerun any one trial of it (the
    settings its folder stored), the compute its finished trials took and the code versions
    they ran on."""
    from .trials import code_versions
    hours = sum(r["train_time_s"] for r in rows) / 3600
    versions = code_versions(rows)
    return (f"\nReproduce one seed S of a row: `minieffnet train --from-run "
            f"{Path(trials_dir).as_posix()}/MODEL-seedS --out runs/MODEL-seedS` (MODEL: the "
            f"first column; the data from `$MINIEFFNET_DATA`).\n\nCompute: {len(rows)} trials, "
            f"{hours:.1f} h of training in all (the sum of their train times; trials run side "
            f"by side share the cores).\n\nCode: "
            + ", ".join(f"{v} ({n} trial{'s' * (n > 1)})" for v, n in versions.most_common())
            + (" — **mixed versions**: their float rounding differs as much as two seeds do."
               if len(versions) > 1 else ".") + "\n")


def choice_metric(rows: Sequence[dict]) -> str:
    """The accuracy a study chooses on: ``"val_top1"`` when every trial row holds a
    validation accuracy (a held-out split of the training images), else the test
    accuracy ``"top1"`` (the studies recorded before validation splits)."""
    return "val_top1" if rows and all("val_top1" in r for r in rows) else "top1"


def accuracy_columns(results: Sequence[dict]) -> list[tuple[str, Callable[[dict], str]]]:
    """The accuracy columns of a results table: validation top-1 (when the study has a
    validation split: what it chooses on), test top-1, and training top-1 of the last epoch
    (beside test, it shows whether a model is under-trained)."""
    columns = []
    if results and all("val_top1_mean" in r for r in results):
        columns.append(("val top-1 % (mean ± 95 % CI)",
                        lambda r: f"{pct(r['val_top1_mean'])} ± {pct(r['val_top1_ci95'])}"))
    columns.append(("test top-1 % (mean ± 95 % CI)" if columns else "top-1 % (mean ± 95 % CI)",
                    lambda r: f"{pct(r['top1_mean'])} ± {pct(r['top1_ci95'])}"))
    if results and all("train_top1_mean" in r for r in results):
        columns.append(("train top-1 %", lambda r: pct(r["train_top1_mean"])))
    return columns


# The figures' error bars are the tables' intervals (``top1_ci95``): the half-width of the
# two-sided 95 % Student-t interval of the mean over seeds (none with one seed).
TOP1_LABEL = "test top-1 (%), mean ± 95 % CI"


def _interval_bars(points: Sequence[dict]) -> list[float]:
    """The error bar of each aggregated row, in percentage points (0 for a single seed)."""
    return [0 if math.isnan(r["top1_ci95"]) else 100 * r["top1_ci95"] for r in points]


def plot_accuracy_vs_flops(rows: Sequence[dict], out_png: str | os.PathLike) -> Path:
    """Top-1 (mean ± 95 % interval over seeds) against FLOPs, one line per strategy through
    the base model, as in the paper's Figure 8. ``rows`` are :func:`compare_scaling`'s
    aggregated rows."""
    base = [r for r in rows if r["strategy"] == "base"]
    lines = [dict(r, line=f"scale by {s}") for s in STRATEGIES
             for r in base + [r for r in rows if r["strategy"] == s]
             if any(r["strategy"] == s for r in rows)]
    return plot_lines(lines, "line", out_png,
                      "Scaling strategies at equal FLOPs (cf. Tan & Le 2019, Fig. 8)")


def plot_accuracy_vs_time(rows: Sequence[dict], out_png: str | os.PathLike) -> Path:
    """Top-1 (mean ± 95 % interval) against each model's quiet training time
    (``quiet_train_min``, :mod:`~.timings`), one line per strategy through the base, every
    budget on it: where Figure 8 compares at equal FLOPs, this compares at equal time."""
    timed = [r for r in rows if not math.isnan(r.get("quiet_train_min", math.nan))]
    lines = [dict(r, line=f"scale by {s}") for s in STRATEGIES
             for r in timed if r["strategy"] in ("base", s)
             if any(t["strategy"] == s for t in timed)]
    return plot_lines(lines, "line", out_png, "Scaling strategies against training time",
                      x=("quiet_train_min", 1.0, "training time on an idle machine (min)"))


def plot_lines(rows: Sequence[dict], group: str, out_png: str | os.PathLike,
               title: str, x: tuple[str, float, str] = ("flops", 1e6,
                                                        "FLOPs (M multiply-adds)")) -> Path:
    """Top-1 (mean ± 95 % interval over seeds) against ``x`` (a column, the unit it is
    divided by, the axis label; default FLOPs), one line per value of ``rows[i][group]``."""
    column, unit, xlabel = x
    fig = figure((6, 4.5))
    ax = fig.subplots()
    for label in dict.fromkeys(r[group] for r in rows):
        points = sorted((r for r in rows if r[group] == label), key=lambda r: r[column])
        ax.errorbar([r[column] / unit for r in points], [100 * r["top1_mean"] for r in points],
                    yerr=_interval_bars(points), marker="o", capsize=3, label=label)
    ax.set(xlabel=xlabel, ylabel=TOP1_LABEL, title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save(fig, out_png)


def plot_budget_curve(rows: Sequence[dict], out_png: str | os.PathLike) -> Path:
    """Top-1 against training epochs (log scale), one line per input resolution: validation
    top-1 (solid) where the study holds a split out, test top-1 (dashed) always. ``rows`` are
    :func:`~.studies.budget_curve`'s aggregated rows."""
    fig = figure((6, 4.5))
    ax = fig.subplots()
    for i, resolution in enumerate(sorted({r["resolution"] for r in rows})):
        points = sorted((r for r in rows if r["resolution"] == resolution),
                        key=lambda r: r["epochs"])
        epochs = [r["epochs"] for r in points]
        for split, style in (("val_top1", "-"), ("top1", "--")):
            if all(f"{split}_mean" in r for r in points):
                name = "val" if split == "val_top1" else "test"
                ax.plot(epochs, [100 * r[f"{split}_mean"] for r in points], style, marker="o",
                        color=f"C{i}", label=f"{resolution} px, {name}")
    ax.set_xscale("log", base=2)
    budgets = sorted({r["epochs"] for r in rows})
    ax.set_xticks(budgets, [str(e) for e in budgets])
    ax.minorticks_off()
    ax.set(xlabel="epochs", ylabel="top-1 (%), mean over seeds",
           title="Accuracy against training budget, per input resolution")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, out_png)


def plot_single_dimension(rows: Sequence[dict], out_png: str | os.PathLike) -> Path:
    """The paper's Figure 3: top-1 against FLOPs when one dimension alone grows, one panel per
    dimension (width, depth, resolution), each point labelled with its multiplier. ``rows``
    are :func:`compare_scaling`'s aggregated rows; the base network starts every panel."""
    fig = figure((11, 3.6))
    axes = fig.subplots(1, 3, sharey=True)
    base = [r for r in rows if r["strategy"] == "base"]
    panels = (("width", "w", lambda r, b: r["width"] / b["width"]),
              ("depth", "d", lambda r, b: r["depth"] / b["depth"]),
              ("resolution", "r", lambda r, b: r["resolution"]))
    for ax, (strategy, letter, value) in zip(axes, panels):
        points = sorted(base + [r for r in rows if r["strategy"] == strategy],
                        key=lambda r: r["flops"])
        ax.errorbar([r["flops_ratio"] for r in points], [100 * r["top1_mean"] for r in points],
                    yerr=_interval_bars(points), marker="o", capsize=3)
        for r in points:
            v = value(r, base[0]) if base else math.nan
            ax.annotate(f"{letter}={v:.3g}", (r["flops_ratio"], 100 * r["top1_mean"]),
                        textcoords="offset points", xytext=(4, -12), fontsize=8)
        ax.set(xlabel="FLOPs (x base)", title=f"scale {strategy} only")
        ax.margins(x=0.2)  # room for the last point's label
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(TOP1_LABEL)
    fig.suptitle("Single-dimension scaling (cf. Tan & Le 2019, Fig. 3)")
    return save(fig, out_png)


def thousands(n: float) -> str:
    """A count in thousands (``12,345`` -> ``12``), "–" for NaN."""
    return "–" if isinstance(n, float) and math.isnan(n) else f"{n / 1e3:,.0f}"


def _signed_pct(d: dict, ref: str, interval: str = "") -> str:
    """``+2.3 ± 0.9 *``: the difference to ``ref`` with its per-pair interval, or its pooled
    one with ``interval="pooled_"``; ``*`` where the interval excludes zero."""
    if f"vs_{ref}_diff" not in d:
        return "–"
    diff, ci = d[f"vs_{ref}_diff"], d[f"vs_{ref}_{interval}ci95"]
    mark = " *" if d[f"vs_{ref}_{interval}distinguishable"] else ""
    return f"{100 * diff:+.1f} ± {pct(ci)}{mark}"


REFERENCES = ("base", "compound")


def write_differences(root: Path, differences: Sequence[dict]) -> None:
    """differences.csv and differences.md from :func:`~.stats.paired_differences`' rows:
    each difference with its per-pair interval and its interval from the pooled variance."""
    columns = ["model", "strategy", "target", "epochs"] + [
        f"vs_{ref}_{k}" for ref in REFERENCES
        for k in ("pairs", "diff", "ci95", "distinguishable", "pooled_ci95",
                  "pooled_distinguishable", "pooled_sd", "pooled_df")]
    write_csv(root / "differences.csv", differences, columns)
    table = markdown_table(differences, [
        ("model", lambda r: r["model"]), ("target", lambda r: f"{r['target']:g}x"),
        ("epochs", lambda r: str(r["epochs"])),
        *((f"vs {ref} (points, {kind} 95 % CI)",
           lambda r, ref=ref, interval=interval: _signed_pct(r, ref, interval))
          for ref in REFERENCES
          for kind, interval in (("per-pair", ""), ("pooled", "pooled_")))])
    pooled = []
    for ref in REFERENCES:
        row = next((r for r in differences if f"vs_{ref}_pooled_sd" in r), None)
        if row is not None and row[f"vs_{ref}_pooled_df"]:
            pooled.append(f"vs {ref}: {100 * row[f'vs_{ref}_pooled_sd']:.2f} points "
                          f"({row[f'vs_{ref}_pooled_df']} degrees of freedom)")
    (root / "differences.md").write_text(
        "# Paired differences in test top-1 (same seeds: same data order and augmentation)\n\n"
        + table + "\n`*`: the 95 % interval excludes zero. Per-pair: from the model's own "
        "paired differences. Pooled: from the standard deviation of the paired differences "
        "pooled over every model against the same reference"
        + (f" ({'; '.join(pooled)})" if pooled else "") + ", the steadier estimate with few "
        "seeds.\n", encoding="utf-8")


def plot_learning_curves(rows: Sequence[dict], study_root: str | os.PathLike,
                         out_png: str | os.PathLike) -> Path:
    """Validation top-1 (test top-1 for a study without a validation split) against epoch
    for every model (mean over its seeds), read from each trial's ``metrics.jsonl``
    (``run_dir`` is relative to ``study_root``); one panel per training budget, one colour
    per strategy, dashed above 2x the base FLOPs. Evidence of convergence: a curve still
    rising at its last epoch has not converged."""
    split = "val" if choice_metric(rows) == "val_top1" else "test"
    curves: dict[str, list[list[float]]] = {}
    for r in rows:
        path = Path(study_root) / r["run_dir"] / "metrics.jsonl"
        if path.is_file():
            curves.setdefault(r["model"], []).append(
                [m[f"{split}_top1"] for m in read_metrics(path) if f"{split}_top1" in m])
    models = {r["model"]: r for r in rows}
    budgets = sorted({r["epochs"] for r in models.values()})
    fig = figure((5 + 3 * len(budgets), 4.5))
    axes = fig.subplots(1, len(budgets), sharey=True, squeeze=False)[0]
    colours = {"base": "k", **{s: f"C{i}" for i, s in enumerate(STRATEGIES)}}
    for ax, epochs in zip(axes, budgets):
        for r in (r for r in models.values() if r["epochs"] == epochs):
            runs = [c for c in curves.get(r["model"], []) if c]
            if not runs:
                continue
            n = min(len(c) for c in runs)
            mean = [100 * statistics.fmean(c[e] for c in runs) for e in range(n)]
            ax.plot(range(1, n + 1), mean, "-" if r["target"] <= 2 else "--",
                    color=colours.get(r["strategy"], "C9"), marker="." if n < 30 else None,
                    label=f"{r['strategy']} {r['target']:g}x ({len(runs)} seed"
                          f"{'s' * (len(runs) > 1)})")
        ax.set(xlabel="epoch", title=f"{epochs} epochs")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel(f"{split} top-1 (%), mean over seeds")
    fig.suptitle("Learning curves of every model (dashed: above 2x the base FLOPs)")
    return save(fig, out_png)
