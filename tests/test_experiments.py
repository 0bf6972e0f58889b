"""Scaling studies: the equal-FLOPs solver (paper Fig. 8), the α, β, γ grid (§3.3 Step 1),
resumable study folders and the two sub-commands. Training is tiny (16 px, 200 images)."""
import csv
import json

import pytest

from minieffnet.cli import main
from minieffnet.experiments import (STRATEGIES, compare_scaling, grid_candidates, grid_search,
                                    solve_strategy)
from minieffnet.scaling import count_flops, make_config
from minieffnet.train import TrainConfig


@pytest.mark.parametrize("base", [dict(width=0.25, depth=0.25, resolution=32),
                                  dict(width=0.1, depth=0.1, resolution=16)])
@pytest.mark.parametrize("target", [2.0, 4.0])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_lands_within_5_percent(base, target, strategy):
    config = make_config("b0", 10, preset="cifar", **base)
    scaled = solve_strategy(config, strategy, target, 1.2, 1.1, 1.15)
    ratio = count_flops(scaled) / count_flops(config)
    assert abs(ratio / target - 1) <= 0.05
    assert f"{ratio:.3f}x" in scaled.name
    changed = {k for k in ("depth", "width", "resolution")
               if getattr(scaled, k) != getattr(config, k)}
    assert changed == ({"depth", "width", "resolution"} if strategy == "compound"
                       else {strategy})


def test_solver_keeps_the_base_settings_and_rejects_bad_requests():
    config = make_config("b0", 10, preset="cifar", width=0.25, depth=0.25, dropout=0.1)
    scaled = solve_strategy(config, "width", 2.0)
    assert (scaled.stem_stride, scaled.dropout, scaled.num_classes) == (1, 0.1, 10)
    with pytest.raises(ValueError, match="unknown strategy"):
        solve_strategy(config, "height", 2.0)
    # depth 0.5 rounds repeats up in big steps: 2x is out of reach within ±5 %
    coarse = make_config("b0", 10, preset="cifar", width=0.25, depth=0.5)
    with pytest.raises(ValueError, match=r"within ±5 %.*1\.700x"):
        solve_strategy(coarse, "depth", 2.0)


def test_grid_candidates_satisfy_the_constraint_and_hold_the_papers_choice():
    grid = grid_candidates(0.05, 0.1)
    assert (1.2, 1.1, 1.15) in grid          # the paper's α, β, γ (product 1.92)
    assert len(grid) == len(set(grid)) > 50
    for a, b, g in grid:
        assert min(a, b, g) >= 1 and abs(a * b * b * g * g - 2) <= 0.1 + 1e-12
    assert all(abs(a * b * b * g * g - 2) <= 0.02 for a, b, g in grid_candidates(0.1, 0.02))
    with pytest.raises(ValueError):
        grid_candidates(0, 0.1)


TINY = TrainConfig(width=0.1, depth=0.1, resolution=16, train_size=200, test_size=100,
                   epochs=1, batch_size=100)


def test_compare_scaling_writes_reports_and_skips_finished_trials(tmp_path):
    kwargs = dict(targets=(2.0,), seeds=(0, 1), strategies=("width", "resolution"),
                  log=lambda line: None)
    results = compare_scaling(TINY, tmp_path, **kwargs)
    assert [r["model"] for r in results] == ["base", "width-x2", "resolution-x2"]
    for r in results[1:]:
        assert abs(r["flops_ratio"] - 2) <= 0.1 and r["seeds"] == 2
        assert r["flops"] > results[0]["flops"]
    runs = sorted(p.name for p in (tmp_path / "trials").iterdir())
    assert len(runs) == 6 and all((tmp_path / "trials" / n / "trial.json").is_file()
                                  for n in runs)
    for name in ("results.csv", "results.md", "trials.csv", "accuracy_vs_flops.png",
                 "single_dimension.png"):
        assert (tmp_path / name).stat().st_size > 0
    with open(tmp_path / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 3
    assert "± " in (tmp_path / "results.md").read_text()

    lines = []
    again = compare_scaling(TINY, tmp_path, **{**kwargs, "log": lines.append})
    assert len(lines) == 6 and all("already done" in line for line in lines)
    assert [r["top1_mean"] for r in again] == [r["top1_mean"] for r in results]


def test_a_changed_recipe_is_refused_in_the_same_study(tmp_path):
    kwargs = dict(targets=(2.0,), seeds=(0,), strategies=("width",), log=lambda line: None)
    compare_scaling(TINY, tmp_path, **kwargs)
    with pytest.raises(ValueError, match="different trial"):
        compare_scaling(TrainConfig(**{**TINY.to_dict(), "lr": 0.05}), tmp_path, **kwargs)


def test_cli_grid_search_ranks_candidates_in_parallel(tmp_path, capsys):
    args = ["grid-search", "--out", str(tmp_path), "--width", "0.1", "--depth", "0.1",
            "--resolution", "16", "--train-size", "200", "--test-size", "100",
            "--epochs", "1", "--batch-size", "100", "--seeds", "1", "--step", "0.5",
            "--tol", "0.3", "--jobs", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Chosen: α = " in out
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1)) and rows
    means = [float(r["top1_mean"]) for r in rows]
    assert means == sorted(means, reverse=True)
    trial = json.loads(next((tmp_path / "trials").glob("*/trial.json")).read_text())
    assert trial["constraint"] == pytest.approx(trial["alpha"] * trial["beta"] ** 2
                                                * trial["gamma"] ** 2, abs=1e-4)


def test_cli_compare_scaling_reports_unreachable_targets(tmp_path, capsys):
    assert main(["compare-scaling", "--out", str(tmp_path), "--depth", "0.5",
                 "--strategies", "depth"]) == 2
    assert "within ±5 %" in capsys.readouterr().err


def test_trials_run_on_a_given_executor(tmp_path):
    # The hook a Dask cluster plugs into: any concurrent.futures.Executor receives the trials.
    import concurrent.futures

    class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
        submitted = 0

        def submit(self, fn, *args, **kwargs):
            CountingExecutor.submitted += 1
            return super().submit(fn, *args, **kwargs)

    with CountingExecutor(1) as pool:
        results = compare_scaling(TINY, tmp_path, targets=(2.0,), seeds=(0,),
                                  strategies=("width",), log=lambda line: None, executor=pool)
    assert CountingExecutor.submitted == 2 and [r["model"] for r in results] == ["base",
                                                                                  "width-x2"]


def test_dask_executor_without_distributed_says_what_to_install(monkeypatch):
    import builtins
    from minieffnet.experiments import dask_executor
    real_import = builtins.__import__

    def no_distributed(name, *args, **kwargs):
        if name == "distributed":
            raise ImportError("No module named 'distributed'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    with pytest.raises(ValueError, match=r"minieffnet\[cluster\]"):
        dask_executor("tcp://127.0.0.1:8786")


def test_grid_candidates_keep_triples_exactly_on_the_tolerance():
    # |1.9 - 2| is 0.10000000000000009 in floating point; the boundary is inclusive.
    grid = grid_candidates(0.05, 0.1)
    assert (1.9, 1.0, 1.0) in grid and (2.1, 1.0, 1.0) in grid
    assert (1.95, 1.0, 1.0) in grid_candidates(0.05, 0.05)
    assert (1.85, 1.0, 1.0) not in grid
