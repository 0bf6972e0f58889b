"""Scaling studies: single-dimension vs compound scaling, and the (α, β, γ) grid search.

Two studies from Tan & Le (2019), "EfficientNet: Rethinking Model Scaling for CNNs":

* :func:`compare_scaling` reproduces the comparison of the paper's Figure 8 (and Table 3 for
  MobileNets/ResNet): from one base network, for each target FLOPs multiplier build one model
  per strategy, scaling depth only, width only, resolution only, or all three with the
  compound rule (Eq. 3, ``d = α^φ, w = β^φ, r = γ^φ``), each *solved* so its FLOPs land within
  ±5 % of the target (:func:`solve_strategy`), and train every one with the same recipe.
* :func:`budget_curve` trains the base at several epoch budgets and input resolutions: the
  curve a protocol's epoch budget E is chosen on, and whether the base is starved of
  resolution.
* :func:`grid_search` is §3.3 Step 1: fix φ = 1, try (α, β, γ) on a grid with
  ``α·β²·γ² ≈ 2`` and ``α, β, γ ≥ 1`` (:func:`grid_candidates`), train each briefly, rank by
  accuracy and pick the best.

The package, one job per module: :mod:`.solver` (networks at equal FLOPs, the α, β, γ grid),
:mod:`.trials` (one recorded training run; many in processes or on a cluster), :mod:`.stats`
(means, intervals, paired differences), :mod:`.timings` (each network's training step timed
on an idle machine: equal FLOPs is not equal time), :mod:`.reports` (tables and figures) and
:mod:`.studies` (the studies and their named protocols, :data:`PROTOCOLS`).

A study lives in one folder::

    study/
      trials/<trial>/      one training run each (config.json, checkpoint.npz, metrics.jsonl,
                           curves.png; see :mod:`minieffnet.train`) and trial.json, its result,
                           written once the run has finished
      trials.csv           one row per trial
      results.csv          one row per model (mean, std, 95 % CI over seeds)
      results.md           the same as a Markdown table
      differences.csv/.md  (compare_scaling) each model minus the base and minus compound,
                           paired by seed, with 95 % intervals
      accuracy_vs_flops.png   (compare_scaling) top-1 against FLOPs per strategy, as Figure 8
      single_dimension.png    (compare_scaling) one panel per single dimension, as Figure 3
      learning_curves.png     (compare_scaling) top-1 against epoch, every model
      budget_curve.png        (budget_curve) top-1 against epochs, one line per resolution
      timings.csv             (compare_scaling --time) each model's quiet training step time
      accuracy_vs_time.png    (compare_scaling, once timed) top-1 against quiet training time
      rounds.csv           (grid_search with successive halving) every round's ranking
      width_per_baseline.png  (width_per_baseline) Figure 4

Every record names paths relative to the study folder, so the small files (never the
checkpoints) can be committed (``studies/`` in the repository) and resumed from another clone.

Running a study again skips the trials that have a ``trial.json``, resumes those interrupted
from their checkpoint, and starts the others, so an interrupted study picks up where it
stopped. Trials are independent: ``jobs > 1`` runs them in that many processes, and an
``executor`` (e.g. :func:`dask_executor`, ``--dask ADDRESS`` on the command line) sends them
to a cluster.
"""
from ..scaling import PAPER_COEFFICIENTS
from .reports import (plot_accuracy_vs_flops, plot_learning_curves, plot_single_dimension,
                      read_results)
from .solver import (FLOPS_TOLERANCE, GRID_STEP, GRID_TOLERANCE, STRATEGIES, candidate_network,
                     grid_candidates, same_networks, scale_config, solve_strategy)
from .stats import aggregate, mean_std_ci, paired_difference, paired_differences
from .studies import (FIGURE4_BASELINES, FIGURE4_WIDTHS, LONG_TARGETS, PROTOCOLS, TARGETS,
                      V2_EPOCHS, V3_EPOCHS,
                      StudyProtocol, budget_curve, compare_scaling, grid_search,
                      width_per_baseline)
from .timings import time_study
from .trials import (TRIAL_FILE, TRIALS_DIR, Trial, code_version, dask_executor, run_trial,
                     run_trials)

__all__ = ["FIGURE4_BASELINES", "FIGURE4_WIDTHS", "FLOPS_TOLERANCE", "GRID_STEP",
           "GRID_TOLERANCE", "LONG_TARGETS", "PAPER_COEFFICIENTS", "PROTOCOLS", "STRATEGIES",
           "TARGETS", "TRIALS_DIR",
           "TRIAL_FILE", "V2_EPOCHS", "V3_EPOCHS", "StudyProtocol", "Trial", "aggregate",
           "budget_curve", "candidate_network", "code_version", "compare_scaling",
           "dask_executor", "grid_candidates",
           "grid_search", "mean_std_ci", "paired_difference", "paired_differences",
           "plot_accuracy_vs_flops", "plot_learning_curves", "plot_single_dimension",
           "read_results", "run_trial", "run_trials", "same_networks", "scale_config",
           "solve_strategy", "time_study",
           "width_per_baseline"]
