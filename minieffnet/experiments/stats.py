"""Statistics of a study: per-model mean ± 95 % CI over seeds, and differences between
models paired by seed."""
from __future__ import annotations

import math
import statistics
from typing import Sequence

# Two-sided 95 % Student-t quantiles by degrees of freedom (1..30); beyond, the normal 1.96.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """The two-sided 95 % Student-t quantile for ``df`` degrees of freedom (df >= 1)."""
    return _T975[df - 1] if df <= len(_T975) else 1.96


def mean_std_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean, sample standard deviation and the half-width of the two-sided 95 % Student-t
    confidence interval of the mean (std and CI are NaN for a single value)."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return mean, math.nan, math.nan
    std = statistics.stdev(values)
    return mean, std, t975(n - 1) * std / math.sqrt(n)


def pooled_sd(groups: Sequence[Sequence[float]]) -> tuple[float, int]:
    """``(sd, df)``: the standard deviation of several groups' values about their own means,
    pooled over the groups (``sum of squares / df``), and its degrees of freedom
    ``df = Σ (n_i - 1)``; ``(nan, 0)`` when no group has two values."""
    groups = [g for g in groups if len(g) > 1]
    df = sum(len(g) - 1 for g in groups)
    if df == 0:
        return math.nan, 0
    squares = sum(sum((v - statistics.fmean(g)) ** 2 for v in g) for g in groups)
    return math.sqrt(squares / df), df


# The accuracies a trial row may hold: test top-1 (``top1``, always), validation top-1 (with
# a validation split) and training top-1 of the last epoch (over its augmented batches).
ACCURACIES = ("top1", "val_top1", "train_top1")


def aggregate(rows: Sequence[dict], keys: Sequence[str]) -> list[dict]:
    """One row per ``model`` (in first-seen order): the ``keys`` columns of its first trial,
    FLOPs, params, activations, epochs, seeds, mean training time, and for each accuracy of
    :data:`ACCURACIES` that every one of its trials holds, ``<accuracy>_mean`` / ``_std`` /
    ``_ci95`` (``top1_mean`` ... is the test accuracy)."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["model"], []).append(r)
    out = []
    for model, trials in groups.items():
        first = trials[0]
        row = {"model": model, **{k: first[k] for k in keys},
               "flops": first["flops"], "params": first["params"],
               "activations": first.get("activations", math.nan),
               "epochs": first["epochs"] if "epochs" in first
               else first["train_config"]["epochs"],
               "seeds": len(trials),
               "train_time_s": statistics.fmean(t["train_time_s"] for t in trials)}
        for accuracy in ACCURACIES:
            if all(accuracy in t for t in trials):
                row.update(zip((f"{accuracy}_mean", f"{accuracy}_std", f"{accuracy}_ci95"),
                               mean_std_ci([t[accuracy] for t in trials])))
        out.append(row)
    return out


def paired_difference(a: dict[int, float], b: dict[int, float]) -> dict[str, float]:
    """``a - b`` paired by seed: the seeds both hold, the mean difference and the half-width
    of its two-sided 95 % Student-t interval (NaN with one pair).

    Pairing removes what a seed does to every model alike (the data order and augmentation
    draws, shared by all models of a seed): the interval of the differences is narrower than
    the two models' own intervals would suggest when the seed effect is large.
    ``distinguishable`` is True when the interval excludes zero.
    """
    differences = _paired(a, b)
    if not differences:
        return {"pairs": 0, "diff": math.nan, "ci95": math.nan, "distinguishable": False}
    mean, _, ci = mean_std_ci(differences)
    return {"pairs": len(differences), "diff": mean, "ci95": ci,
            "distinguishable": _excludes_zero(mean, ci)}


def _paired(a: dict[int, float], b: dict[int, float]) -> list[float]:
    """``a[s] - b[s]`` for every seed s both hold, in seed order."""
    return [a[s] - b[s] for s in sorted(set(a) & set(b))]


def _excludes_zero(mean: float, ci: float) -> bool:
    return bool(not math.isnan(ci) and abs(mean) > ci)


def paired_differences(rows: Sequence[dict]) -> list[dict]:
    """For every scaled model of a :func:`compare_scaling` study, its top-1 minus the base's
    (same epochs) and minus compound scaling's (same target and epochs), paired by seed
    (:func:`paired_difference`). ``rows`` are trial rows (one per model and seed).

    Each difference also gets an interval from the *pooled* within-study variance of the
    paired differences against the same reference (:func:`pooled_sd` over every model's
    differences to the base, and over every model's to compound): with three seeds a
    single model's own standard deviation is a poor estimate (the t quantile is 4.3), and
    float rounding between code versions acts like a new seed, so the pooled interval is
    the honest one when the per-pair ones look tighter than the study's scatter.
    Columns ``vs_<ref>_pooled_ci95`` / ``_pooled_distinguishable`` / ``_pooled_sd`` /
    ``_pooled_df``."""
    by_model: dict[tuple, dict[int, float]] = {}
    meta: dict[tuple, dict] = {}
    for r in rows:
        key = (r["strategy"], r["target"], r["epochs"])
        by_model.setdefault(key, {})[r["seed"]] = r["top1"]
        meta.setdefault(key, r)
    out = []
    paired: dict[str, list[tuple[dict, list[float]]]] = {"base": [], "compound": []}
    for (strategy, target, epochs), scores in by_model.items():
        if strategy == "base":
            continue
        row = {"model": meta[strategy, target, epochs]["model"], "strategy": strategy,
               "target": target, "epochs": epochs}
        references = (("base", ("base", 1.0, epochs)), ("compound", ("compound", target, epochs)))
        for ref, key in references:
            if ref == strategy or key not in by_model:
                continue
            d = paired_difference(scores, by_model[key])
            row.update({f"vs_{ref}_{k}": v for k, v in d.items()})
            paired[ref].append((row, _paired(scores, by_model[key])))
        out.append(row)
    for ref, pairs in paired.items():
        sd, df = pooled_sd([differences for _, differences in pairs])
        for row, differences in pairs:
            ci = t975(df) * sd / math.sqrt(len(differences)) if df and differences else math.nan
            row.update({f"vs_{ref}_pooled_ci95": ci, f"vs_{ref}_pooled_sd": sd,
                        f"vs_{ref}_pooled_df": df,
                        f"vs_{ref}_pooled_distinguishable":
                            _excludes_zero(row[f"vs_{ref}_diff"], ci)})
    return out
