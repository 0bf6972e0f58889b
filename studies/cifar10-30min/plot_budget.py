"""Redraw figures/cifar10_30min_accuracy_vs_budget.png from the committed records (docs/recipe.md,
"Which network for 30 minutes"): python studies/cifar10-30min/plot_budget.py, from the
repository root."""
from minieffnet.viz import plot_accuracy_vs_budget
s = "studies/cifar10-30min/"
plot_accuracy_vs_budget([
    ("width 0.5, depth 0.25", 10, s + "budget/budget10-w0.5-d0.25"),
    ("width 0.5, depth 0.25", 20, s + "budget/budget20-w0.5-d0.25"),
    ("width 0.5, depth 0.25", 30, s + "network/cand-w0.5-d0.25"),
    ("width 0.5, depth 0.5 (recipe)", 10, s + "budget/budget10-w0.5-d0.5"),
    ("width 0.5, depth 0.5 (recipe)", 20, s + "budget/budget20-w0.5-d0.5"),
    ("width 0.5, depth 0.5 (recipe)", 30, s + "ablation/val-noema-lr04"),
    ("width 0.625, depth 0.5", 30, s + "network/cand-w0.625-d0.5")],
    "figures/cifar10_30min_accuracy_vs_budget.png",
    "CIFAR-10 validation top-1 against the time budget (2 cores)")
