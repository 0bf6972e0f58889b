"""Plots: training curves from a run's ``metrics.jsonl``, and runs' final accuracy against their
time budget; and the two helpers every figure of the package is made with (these, the class
activation maps of :mod:`minieffnet.cam`, a study's figures): :func:`figure` and :func:`save`.

Figures are drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas, never
through ``pyplot``: no global backend is chosen, no window opens, and plotting from a training
loop on a headless machine (or inside a notebook) leaves the user's matplotlib state alone.
matplotlib is imported inside the plotting functions: it takes about a second to import, and
the command line imports this module (through the trainer) for every sub-command.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from .io import write_atomic


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The rows of a ``metrics.jsonl`` file (one JSON object per line), in file order.

    Raises ValueError naming the file and line if a line is not a JSON object.
    """
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {number}: not JSON ({e})") from e
            if not isinstance(row, dict):
                raise ValueError(f"{path}, line {number}: expected a JSON object, "
                                 f"got {line.strip()!r}")
            rows.append(row)
    return rows


def figure(figsize: tuple[float, float]):
    """A new :class:`matplotlib.figure.Figure` of ``figsize`` inches, constrained layout, on
    the Agg canvas (module docstring: no pyplot); add axes with ``fig.subplots(...)`` and
    write it with :func:`save`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig, out_png: str | os.PathLike) -> Path:
    """Write ``fig`` to ``out_png`` at 100 dpi, in the format its suffix names (PNG without
    one), replacing it atomically (:func:`~minieffnet.io.write_atomic`: an image viewer never
    reads half a file, and a planted link at a temporary name cannot redirect it); returns
    the path."""
    out = Path(out_png)
    # The format is named, not inferred: the temporary name's suffix is not the image's.
    return write_atomic(out, lambda f: fig.savefig(f, dpi=100, format=out.suffix[1:] or "png"))


def plot_training_curves(metrics_jsonl_path: str | os.PathLike,
                         out_png: str | os.PathLike) -> Path:
    """Plot loss and accuracy per epoch, train against test, from a run's metrics file.

    Left panel: ``train_loss`` and ``test_loss`` (log scale); right panel: ``train_top1``,
    ``test_top1`` and ``test_top5`` (as percentages). A run with a validation split plots its
    ``val_*`` columns instead of the test ones; epochs that were not evaluated are skipped.
    Writes ``out_png`` (replacing it atomically, so an image viewer never reads half a file)
    and returns its path. Raises ValueError if the file holds no epoch.
    """
    from matplotlib.ticker import FormatStrFormatter

    rows = read_metrics(metrics_jsonl_path)
    if not rows:
        raise ValueError(f"{metrics_jsonl_path} holds no epoch to plot")
    held = "val" if any("val_loss" in r for r in rows) else "test"

    def curve(key):
        """(epochs, values) of the rows that hold ``key``."""
        kept = [r for r in rows if key in r]
        return [r["epoch"] for r in kept], [r[key] for r in kept]

    fig = figure((10, 4))
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(*curve("train_loss"), "o-", label="train")
    loss_ax.plot(*curve(f"{held}_loss"), "s-", label=held)
    # log scale: the first epochs' losses (often far higher) must not flatten the rest
    loss_ax.set(xlabel="epoch", ylabel="loss (training objective)", title="Loss", yscale="log")
    for axis in (loss_ax.yaxis.set_major_formatter, loss_ax.yaxis.set_minor_formatter):
        axis(FormatStrFormatter("%g"))  # 2, 3, 4 rather than 2×10^0, 3×10^0, ...
    for key, style, label in (("train_top1", "o-", "train top-1"),
                              (f"{held}_top1", "s-", f"{held} top-1"),
                              (f"{held}_top5", "^--", f"{held} top-5")):
        epochs, values = curve(key)
        acc_ax.plot(epochs, [100 * v for v in values], style, label=label)
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy", ylim=(0, 100))
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
        # Integer epochs only: a 3-epoch run should not show ticks at 1.25, 1.5, ...
        ax.xaxis.get_major_locator().set_params(integer=True)

    return save(fig, out_png)


def final_accuracy(run_dir: str | os.PathLike) -> dict:
    """The last evaluated epoch of a run folder's ``metrics.jsonl``: ``{"split": "val" or
    "test", "epoch", "top1", "tta_top1"}`` (``tta_top1`` None when the run had no TTA).
    Raises ValueError if no epoch was evaluated."""
    path = Path(run_dir) / "metrics.jsonl"
    rows = [r for r in read_metrics(path) if "val_top1" in r or "test_top1" in r]
    if not rows:
        raise ValueError(f"{path} holds no evaluated epoch")
    last = rows[-1]
    split = "val" if "val_top1" in last else "test"
    return {"split": split, "epoch": last["epoch"], "top1": last[f"{split}_top1"],
            "tta_top1": last.get(f"{split}_tta_top1")}


def plot_accuracy_vs_budget(runs: Sequence[tuple[str, float, str | os.PathLike]],
                            out_png: str | os.PathLike, title: str) -> Path:
    """Final top-1 of runs against their budget, one line per label: the paper's question
    (the best network under a resource constraint) as a curve.

    runs: ``(label, budget in minutes, run folder)`` each; the plain top-1 is drawn solid, the
    TTA one (where the run has it) dashed, from :func:`final_accuracy`. Writes ``out_png``
    (atomically) and returns its path."""
    points = [(label, minutes, final_accuracy(folder)) for label, minutes, folder in runs]
    fig = figure((6, 4.5))
    ax = fig.subplots()
    for label in dict.fromkeys(p[0] for p in points):
        line = sorted((m, a) for name, m, a in points if name == label)
        drawn = ax.plot([m for m, _ in line], [100 * a["top1"] for _, a in line], "o-",
                        label=label)
        tta = [(m, a["tta_top1"]) for m, a in line if a["tta_top1"] is not None]
        if tta:
            ax.plot([m for m, _ in tta], [100 * v for _, v in tta], "s--", alpha=0.6,
                    color=drawn[0].get_color(), label=f"{label}, with TTA")
    split = points[0][2]["split"] if points else "val"
    ax.set(xlabel="time budget (min)", ylabel=f"{split} top-1 (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save(fig, out_png)
