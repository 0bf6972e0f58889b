"""Scaling studies: the equal-FLOPs solver (paper Fig. 8), the α, β, γ grid (§3.3 Step 1),
resumable study folders and the two sub-commands. Training is tiny (16 px, 200 images)."""
import csv
import json

import pytest

from minieffnet.cli import main
from minieffnet.errors import BadOptionError
from minieffnet.experiments import (STRATEGIES, budget_curve, compare_scaling, grid_candidates,
                                    grid_search, solve_strategy, width_per_baseline)
from minieffnet.scaling import count_flops, make_config
from minieffnet.train_config import TrainConfig


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


def test_candidates_that_round_to_one_network_are_one_candidate():
    from minieffnet.experiments import same_networks
    base = make_config("b0", 10, preset="cifar", width=0.25, depth=0.25, resolution=16)
    # depth 0.4 and 0.425 round to the same repeats; 16 * 1.1 and 16 * 1.15 both to 18 px
    groups = same_networks(base, [(1.6, 1.0, 1.1), (1.7, 1.0, 1.1), (1.3, 1.1, 1.1),
                                  (1.2, 1.1, 1.15), (1.0, 1.0, 1.4)])
    assert groups == {(1.6, 1.0, 1.1): [(1.7, 1.0, 1.1)], (1.2, 1.1, 1.15): [(1.3, 1.1, 1.1)],
                      (1.0, 1.0, 1.4): []}          # the paper's point keeps its group


TINY = TrainConfig(width=0.1, depth=0.1, resolution=16, train_size=200, test_size=100,
                   epochs=1, batch_size=100)


def no_training(monkeypatch):
    """Make any training fail: a report (``report_only``) must train nothing."""
    import minieffnet.train as train_module

    def trainer(*args, **kw):
        raise AssertionError("a report trained a trial")

    monkeypatch.setattr(train_module, "Trainer", trainer)


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


def test_report_only_tables_the_finished_trials_and_trains_nothing(tmp_path, monkeypatch):
    kwargs = dict(targets=(2.0,), strategies=("width",), log=lambda line: None)
    with pytest.raises(ValueError, match="no finished trial"):
        compare_scaling(TINY, tmp_path, seeds=(0, 1), report_only=True, **kwargs)
    compare_scaling(TINY, tmp_path, seeds=(0,), **kwargs)    # seed 0 of every model
    no_training(monkeypatch)
    results = compare_scaling(TINY, tmp_path, seeds=(0, 1), report_only=True, **kwargs)
    assert [(r["model"], r["seeds"]) for r in results] == [("base", 1), ("width-x2", 1)]
    assert "Partial: 2 of the study's 4 trials" in (tmp_path / "results.md").read_text()
    assert not (tmp_path / "trials" / "base-seed1").exists()


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
    assert "Chosen: α = " in out and "which the grid misses" in out
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    # The paper's point is ranked with the grid's, so that the report can say where it stands.
    assert ("1.2", "1.1", "1.15") in {(r["alpha"], r["beta"], r["gamma"]) for r in rows}
    assert "The paper's (1.2, 1.1, 1.15): round 1" in (tmp_path / "results.md").read_text()
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


def test_training_exceptions_survive_the_trip_back_from_a_worker_process():
    # A --jobs study gets a worker's exception back pickled; one that cannot be rebuilt
    # breaks the whole pool ("internal error (BrokenProcessPool)" instead of "interrupted").
    import pickle

    from minieffnet.train import TrainingDiverged, TrainingInterrupted
    for e in (TrainingInterrupted("stopped; resume with: x", 2, 7, True),
              TrainingDiverged("loss is NaN", 3, 5)):
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e) and str(back) == str(e) and vars(back) == vars(e)


def test_an_interrupted_trial_starts_no_queued_trial(tmp_path, monkeypatch):
    # Ctrl-C reaches the study and its workers: a worker's trial comes back interrupted, and
    # the trials still queued must not start training behind the user's back.
    import concurrent.futures

    from minieffnet.experiments import trials as trials_module
    from minieffnet.train import TrainingInterrupted
    started = []

    def interrupted_at_once(trial, progress=False):
        started.append(trial.model)
        raise TrainingInterrupted("interrupted", 1, 0, True)

    monkeypatch.setattr(trials_module, "run_trial", interrupted_at_once)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with pytest.raises(KeyboardInterrupt):
            compare_scaling(TINY, tmp_path, targets=(2.0,), seeds=(0, 1),
                            strategies=("width",), log=lambda line: None, executor=pool)
    assert started == ["base"]


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


def test_paired_difference_pairs_by_seed_and_says_when_zero_is_excluded():
    from minieffnet.experiments import paired_difference
    # A constant +2-point gap under a large seed effect: pairing sees it exactly.
    a = {0: 0.50, 1: 0.60, 2: 0.70}
    b = {0: 0.48, 1: 0.58, 2: 0.68, 3: 0.99}          # seed 3 has no partner: ignored
    d = paired_difference(a, b)
    assert d["pairs"] == 3 and d["diff"] == pytest.approx(0.02)
    assert d["ci95"] == pytest.approx(0, abs=1e-12) and d["distinguishable"] is True
    noisy = paired_difference({0: 0.5, 1: 0.6, 2: 0.7}, {0: 0.45, 1: 0.57, 2: 0.66})
    assert noisy["distinguishable"] and noisy["diff"] - noisy["ci95"] > 0
    mixed = paired_difference({0: 0.5, 1: 0.6}, {0: 0.52, 1: 0.57})
    assert not mixed["distinguishable"]
    assert paired_difference({0: 0.5}, {1: 0.5})["pairs"] == 0


def test_pooled_intervals_use_the_scatter_of_every_models_differences():
    from minieffnet.experiments.stats import paired_differences, pooled_sd
    sd, df = pooled_sd([[1.0, 2.0, 3.0], [5.0, 5.0], [7.0]])
    assert df == 3 and sd == pytest.approx((2.0 / 3) ** 0.5)   # (1 + 0 + 1 + 0) / 3
    # Width's three paired differences to the base happen to agree (a per-pair interval of
    # zero); depth's scatter. Pooled, both get the study's scatter: width's interval widens.
    top1 = {("base", 1.0): (0.70, 0.70, 0.70), ("width", 2.0): (0.72, 0.72, 0.72),
            ("depth", 2.0): (0.70, 0.74, 0.72)}
    rows = [{"model": f"{s}-x{t:g}", "strategy": s, "target": t, "epochs": 1, "seed": seed,
             "top1": v} for (s, t), values in top1.items() for seed, v in enumerate(values)]
    diffs = {d["model"]: d for d in paired_differences(rows)}
    width, depth = diffs["width-x2"], diffs["depth-x2"]
    assert width["vs_base_ci95"] == pytest.approx(0, abs=1e-12)
    assert width["vs_base_pooled_df"] == depth["vs_base_pooled_df"] == 4
    expected = 2.776 * width["vs_base_pooled_sd"] / 3 ** 0.5         # t(4) = 2.776
    assert width["vs_base_pooled_ci95"] == pytest.approx(expected)
    assert depth["vs_base_pooled_ci95"] == pytest.approx(expected)
    assert width["vs_base_pooled_sd"] == pytest.approx((0.02 ** 2 * 2 / 4) ** 0.5)
    assert width["vs_base_distinguishable"] and not width["vs_base_pooled_distinguishable"]


def test_two_budgets_train_the_long_targets_again_and_records_are_portable(tmp_path):
    results = compare_scaling(TINY, tmp_path, targets=(2.0, 4.0), seeds=(0, 1),
                              strategies=("width", "compound"), log=lambda line: None,
                              budgets=(1, 2), long_targets=(1.0, 2.0))
    names = [r["model"] for r in results]
    assert names == ["base-1ep", "width-x2-1ep", "compound-x2-1ep", "width-x4-1ep",
                     "compound-x4-1ep", "base-2ep", "width-x2-2ep", "compound-x2-2ep"]
    assert {r["epochs"] for r in results if r["model"].endswith("2ep")} == {2}
    assert all(r["activations"] > 0 for r in results)
    # Records name paths relative to the study folder, so a fresh clone can resume them.
    for path in (tmp_path / "trials").glob("*/trial.json"):
        trial = json.loads(path.read_text())
        assert trial["run_dir"] == f"trials/{path.parent.name}"
        assert trial["train_config"]["out_dir"] == trial["run_dir"]
        assert trial["train_config"]["data_dir"] is None
        assert str(tmp_path) not in path.read_text()
    with open(tmp_path / "differences.csv") as f:
        diffs = {r["model"]: r for r in csv.DictReader(f)}
    assert set(diffs) == set(names) - {"base-1ep", "base-2ep"}
    assert diffs["width-x2-2ep"]["vs_base_pairs"] == "2"
    assert diffs["compound-x4-1ep"]["vs_compound_pairs"] == ""   # not compared with itself
    for name in ("differences.md", "learning_curves.png", "accuracy_vs_flops.png",
                 "accuracy_vs_flops_2ep.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_a_study_moved_to_another_folder_resumes_without_retraining(tmp_path):
    import shutil
    kwargs = dict(targets=(2.0,), seeds=(0,), strategies=("width",), log=lambda line: None)
    compare_scaling(TINY, tmp_path / "here", **kwargs)
    shutil.copytree(tmp_path / "here", tmp_path / "clone")   # as a fresh clone of the records
    for ckpt in (tmp_path / "clone").rglob("checkpoint.npz"):
        ckpt.unlink()                                        # never committed
    lines = []
    compare_scaling(TINY, tmp_path / "clone", **{**kwargs, "log": lines.append})
    assert len(lines) == 2 and all("already done" in line for line in lines)


def test_paired_seeds_give_every_model_the_same_batches(tmp_path):
    # What pairing rests on: the loader's draws depend on the seed, not on the model, and
    # augmentation runs on the stored images before each model's resize.
    import numpy as np
    from minieffnet.train import Trainer
    batches = []
    for resolution, width in ((16, 0.1), (24, 0.2)):
        config = TrainConfig(**{**TINY.to_dict(), "resolution": resolution, "width": width,
                                "out_dir": str(tmp_path / f"r{resolution}")})
        batches.append([(x, y) for x, y in Trainer(config, progress=False).loader])
    small, large = batches
    assert len(small) == len(large) == 2
    for (xs, ys), (xl, yl) in zip(small, large):
        assert (ys == yl).all()
        # The 24 px batch, shrunk to 16 px, is the same augmented image as the 16 px batch.
        from minieffnet.data import resize_bilinear
        assert np.corrcoef(resize_bilinear(xl, 16).ravel(), xs.ravel())[0, 1] > 0.9


def test_successive_halving_keeps_the_better_half_and_doubles_the_budget(tmp_path, monkeypatch):
    candidates = [(1.0, 1.0, 1.4), (2.0, 1.0, 1.0), (1.2, 1.1, 1.15), (1.0, 1.4, 1.0)]
    ranked = grid_search(TINY, tmp_path, candidates, seeds=(0,), log=lambda line: None,
                         rounds=2)
    assert len(ranked) == 2 and {r["epochs"] for r in ranked} == {2}
    with open(tmp_path / "rounds.csv") as f:
        rounds = list(csv.DictReader(f))
    first = [r for r in rounds if r["round"] == "1"]
    assert len(first) == 4 and {r["epochs"] for r in first} == {"1"}
    kept = {(float(r["alpha"]), float(r["beta"]), float(r["gamma"])) for r in first[:2]}
    assert {(r["alpha"], r["beta"], r["gamma"]) for r in ranked} == kept
    assert "The paper's (1.2, 1.1, 1.15): round 1" in (tmp_path / "results.md").read_text()

    # A search still running: --report ranks what has finished, up to the first open round.
    no_training(monkeypatch)
    report = dict(seeds=(0,), log=lambda line: None, rounds=2, report_only=True)
    second = sorted((tmp_path / "trials").glob("*-2ep-seed0"))
    (second[0] / "trial.json").unlink()
    ranked = grid_search(TINY, tmp_path, candidates, **report)
    text = (tmp_path / "results.md").read_text()
    assert len(ranked) == 1 and ranked[0]["epochs"] == 2
    assert "Partial: 1 of round 2's 2 trials have finished" in text and "Best so far" in text
    (second[1] / "trial.json").unlink()
    ranked = grid_search(TINY, tmp_path, candidates, **report)
    assert len(ranked) == 4 and {r["epochs"] for r in ranked} == {1}
    text = (tmp_path / "results.md").read_text()
    assert "round 2 of 2 (2 epochs) has no finished trial yet" in text and "Best so far" in text
    for record in (tmp_path / "trials").glob("*/trial.json"):
        record.unlink()
    with pytest.raises(ValueError, match="no finished trial"):
        grid_search(TINY, tmp_path, candidates, **report)


def test_width_per_baseline_draws_one_line_per_baseline(tmp_path, monkeypatch):
    from minieffnet.experiments import width_per_baseline
    rows = width_per_baseline(TINY, tmp_path, baselines=((1.0, 1.0), (2.0, 1.0)),
                              widths=(1.0, 1.5), log=lambda line: None)
    assert [r["model"] for r in rows] == ["d1-r1-w1", "d1-r1-w1.5", "d2-r1-w1", "d2-r1-w1.5"]
    assert rows[1]["flops"] > rows[0]["flops"] and rows[2]["depth"] > rows[0]["depth"]
    assert (tmp_path / "width_per_baseline.png").stat().st_size > 0
    no_training(monkeypatch)
    (tmp_path / "trials" / "d2-r1-w1.5-seed0" / "trial.json").unlink()
    rows = width_per_baseline(TINY, tmp_path, baselines=((1.0, 1.0), (2.0, 1.0)),
                              widths=(1.0, 1.5), log=lambda line: None, report_only=True)
    assert [r["model"] for r in rows] == ["d1-r1-w1", "d1-r1-w1.5", "d2-r1-w1"]
    assert "Partial: 3 of the study's 4 trials" in (tmp_path / "results.md").read_text()


def test_protocol_v2_sets_the_documented_defaults_and_options_override_them():
    from minieffnet.cli import _study_settings, build_parser
    from minieffnet.experiments import PROTOCOLS, V2_EPOCHS
    parse = build_parser().parse_args
    base, budgets, seeds, protocol = _study_settings(
        parse(["compare-scaling", "--out", "x", "--protocol", "v2"]))
    assert protocol is PROTOCOLS["v2"] and seeds == 3 and budgets == (V2_EPOCHS, 2 * V2_EPOCHS)
    assert (base.dataset, base.resolution, base.width, base.depth) == ("cifar10", 16, 0.25, 0.25)
    assert base.train_size is None and base.test_size is None and base.epochs == V2_EPOCHS
    base, budgets, seeds, _ = _study_settings(parse(
        ["compare-scaling", "--out", "x", "--protocol", "v2", "--resolution", "32",
         "--epochs", "3", "--seeds", "5", "--dataset", "synthetic"]))
    assert (base.resolution, base.dataset, budgets, seeds) == (32, "synthetic", (3,), 5)
    base, budgets, seeds, protocol = _study_settings(parse(["grid-search", "--out", "x"]))
    assert protocol is None and (base.dataset, budgets, seeds) == ("synthetic", (2,), 2)
    # The other two studies of the protocol: its base and recipe, their own budgets and seeds.
    for command, want in (("grid-search", ((2,), 2)), ("width-per-baseline", ((V2_EPOCHS,), 1))):
        base, budgets, seeds, _ = _study_settings(parse([command, "--out", "x", "--protocol",
                                                         "v2"]))
        assert (budgets, seeds) == want and (base.dataset, base.resolution) == ("cifar10", 16)
        assert base.epochs == budgets[0]


def test_cli_compare_scaling_with_two_budgets_prints_the_paired_differences(tmp_path, capsys):
    args = ["compare-scaling", "--out", str(tmp_path), "--width", "0.1", "--depth", "0.1",
            "--resolution", "16", "--train-size", "200", "--test-size", "100",
            "--epochs", "1", "2", "--batch-size", "100", "--seeds", "2", "--targets", "2",
            "--strategies", "width", "compound"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Paired differences" in out and "compound-x2-2ep" in out


def test_trials_run_seed_by_seed_and_come_back_in_their_own_order(tmp_path):
    lines = []
    results = compare_scaling(TINY, tmp_path, targets=(2.0,), seeds=(0, 1),
                              strategies=("width",), log=lines.append)
    assert [line.split("]")[1].split(":")[0].strip() for line in lines] == [
        "base seed 0", "width-x2 seed 0", "base seed 1", "width-x2 seed 1"]
    assert [r["model"] for r in results] == ["base", "width-x2"]


def test_the_command_under_the_results_reproduces_a_trial(tmp_path, capsys):
    # results.md names, for every row, a command that retrains one of its trials from the
    # settings its folder stored; the retrained network must score exactly what the study did.
    study = tmp_path / "study"
    compare_scaling(TINY, study, targets=(2.0,), seeds=(1,), strategies=("width",),
                    log=lambda line: None)
    text = (study / "results.md").read_text(encoding="utf-8")
    assert "| width-x2 |" in text and "Compute: 2 trials," in text
    command = text.split("Reproduce one seed S of a row: `")[1].split("`")[0]
    args = command.replace("MODEL", "width-x2").replace("seedS", "seed1").split()
    assert args[0] == "minieffnet"
    again = tmp_path / "again"
    assert main(args[1:-1] + [str(again), "--no-progress"]) == 0
    capsys.readouterr()
    stored = json.loads((study / "trials" / "width-x2-seed1" / "trial.json").read_text())
    last = json.loads((again / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["test_top1"] == stored["top1"]
    assert main(["train", "--from-run", str(again), "--recipe", "cifar10-30min"]) == 2
    assert "drop --recipe" in capsys.readouterr().err


def test_every_seed_trains_at_the_first_budget_before_any_longer_one(tmp_path):
    # A study stopped part-way must hold the multi-seed comparison at its first budget.
    lines = []
    compare_scaling(TINY, tmp_path, targets=(2.0,), seeds=(0, 1), strategies=("width",),
                    budgets=(1, 2), log=lines.append)
    assert [line.split("]")[1].split(":")[0].strip() for line in lines] == [
        "base-1ep seed 0", "width-x2-1ep seed 0", "base-1ep seed 1", "width-x2-1ep seed 1",
        "base-2ep seed 0", "width-x2-2ep seed 0", "base-2ep seed 1", "width-x2-2ep seed 1"]


def test_cli_width_per_baseline_trains_each_baseline_at_each_width(tmp_path, capsys):
    args = ["width-per-baseline", "--out", str(tmp_path), "--width", "0.1", "--depth", "0.1",
            "--resolution", "16", "--train-size", "200", "--test-size", "100", "--epochs", "1",
            "--batch-size", "100", "--baselines", "1,1", "2,1", "--widths", "1", "1.5"]
    assert main(args) == 0
    assert "Figure 4" in capsys.readouterr().out
    with open(tmp_path / "results.csv") as f:
        assert [r["model"] for r in csv.DictReader(f)] == ["d1-r1-w1", "d1-r1-w1.5", "d2-r1-w1",
                                                           "d2-r1-w1.5"]
    assert main(["width-per-baseline", "--out", str(tmp_path), "--baselines", "2"]) == 2
    assert "DEPTH,RESOLUTION" in capsys.readouterr().err


def test_ctrl_c_stops_a_parallel_study_cleanly_and_the_same_command_resumes(tmp_path):
    # Ctrl-C reaches every process of the study. The worker that has finished its trial and
    # waits for work must not die of it (that broke the pool: "internal error"); the ones
    # training save their checkpoints; a trial that was only queued never starts (a process
    # pool cannot cancel what it has queued, so the study must not queue it); the command
    # exits 130 and a re-run finishes the study.
    import os
    import signal
    import subprocess
    import sys
    import time
    study = tmp_path / "study"
    cmd = [sys.executable, "-m", "minieffnet.cli", "compare-scaling", "--out", str(study),
           "--width", "0.1", "--depth", "0.1", "--resolution", "16", "--train-size", "1000",
           "--test-size", "100", "--epochs", "3", "--batch-size", "100", "--seeds", "1",
           "--targets", "4", "--strategies", "depth", "width", "resolution", "--jobs", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    base_done = study / "trials" / "base-seed0" / "trial.json"
    deadline = time.time() + 300
    while not base_done.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert base_done.exists() and proc.poll() is None, "the deeper model finished first"
    os.killpg(proc.pid, signal.SIGINT)        # what the terminal does on Ctrl-C
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "internal error" not in err and "interrupted" in err
    assert not (study / "trials" / "depth-x4-seed0" / "trial.json").exists()
    assert not (study / "trials" / "resolution-x4-seed0").exists(), "a queued trial started"
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "base seed 0: top-1" in again.stdout and "already done" in again.stdout


def test_protocol_v3_needs_a_data_set_and_holds_out_a_validation_split():
    from minieffnet.cli import _study_settings, build_parser
    from minieffnet.errors import BadOptionError
    from minieffnet.experiments import PROTOCOLS, V3_EPOCHS
    parse = build_parser().parse_args
    with pytest.raises(BadOptionError, match="--protocol v3 needs --dataset"):
        _study_settings(parse(["compare-scaling", "--out", "x", "--protocol", "v3"]))
    base, budgets, seeds, protocol = _study_settings(parse(
        ["compare-scaling", "--out", "x", "--protocol", "v3", "--dataset", "folder:imgs"]))
    assert protocol is PROTOCOLS["v3"] and seeds == 3 and budgets == (V3_EPOCHS, 2 * V3_EPOCHS)
    assert (base.dataset, base.resolution, base.val_size, base.final_test) == \
        ("folder:imgs", 32, 1000, True)
    assert protocol.long_targets == (1.0, 2.0, 4.0)  # every model at both budgets
    base, budgets, seeds, _ = _study_settings(parse(
        ["budget-curve", "--out", "x", "--protocol", "v3", "--dataset", "folder:imgs"]))
    assert (budgets, seeds) == ((5, 10, 20, 40), 1) and base.epochs == 5


def test_budget_curve_trains_every_side_at_every_budget_and_reports_validation(tmp_path,
                                                                             monkeypatch):
    from minieffnet.experiments import budget_curve
    recipe = TrainConfig(**{**TINY.to_dict(), "val_size": 50})
    rows = budget_curve(recipe, tmp_path, budgets=(1, 2), resolutions=(12, 16),
                        log=lambda line: None)
    assert [(r["model"], r["resolution"], r["epochs"]) for r in rows] == [
        ("r12-1ep", 12, 1), ("r12-2ep", 12, 2), ("r16-1ep", 16, 1), ("r16-2ep", 16, 2)]
    assert rows[0]["flops_ratio"] < 1 and rows[2]["flops_ratio"] == 1
    assert all(0 <= r["val_top1_mean"] <= 1 and 0 <= r["train_top1_mean"] <= 1 for r in rows)
    text = (tmp_path / "results.md").read_text()
    assert "val top-1 %" in text and "test top-1 %" in text and "train top-1 %" in text
    assert (tmp_path / "budget_curve.png").stat().st_size > 0
    record = json.loads((tmp_path / "trials" / "r16-2ep-seed0" / "trial.json").read_text())
    assert {"val_top1", "top1", "train_top1", "code_version"} <= set(record)
    no_training(monkeypatch)
    again = budget_curve(recipe, tmp_path, budgets=(1, 2), resolutions=(12, 16),
                         log=lambda line: None, report_only=True)
    assert [r["val_top1_mean"] for r in again] == [r["val_top1_mean"] for r in rows]


def test_a_grid_with_a_validation_split_ranks_on_it_not_on_the_test_set(tmp_path, monkeypatch):
    import minieffnet.experiments.studies as studies
    candidates = [(1.0, 1.0, 1.4), (2.0, 1.0, 1.0), (1.0, 1.4, 1.0)]
    # Validation and test disagree by construction: the ranking must follow validation.
    scores = {(1.0, 1.0, 1.4): (0.3, 0.9), (2.0, 1.0, 1.0): (0.9, 0.1),
              (1.0, 1.4, 1.0): (0.6, 0.5)}

    def fake_trials(trials, jobs, log, executor):
        return [{"model": t.model, "seed": t.seed, **t.info, "flops": 1, "params": 1,
                 "epochs": t.train.epochs, "val_top1": scores[t.info["alpha"], t.info["beta"],
                                                              t.info["gamma"]][0],
                 "top1": scores[t.info["alpha"], t.info["beta"], t.info["gamma"]][1],
                 "train_time_s": 1.0, "run_dir": "x", "code_version": "abc"} for t in trials]
    monkeypatch.setattr(studies, "run_trials", fake_trials)
    ranked = grid_search(TINY, tmp_path, candidates, seeds=(0, 1), log=lambda line: None)
    assert [(r["alpha"], r["beta"], r["gamma"]) for r in ranked] == [
        (2.0, 1.0, 1.0), (1.0, 1.4, 1.0), (1.0, 1.0, 1.4)]
    assert "val top-1 %" in (tmp_path / "results.md").read_text()


def test_trials_record_their_code_version_and_a_mix_is_warned_about(tmp_path):
    from minieffnet.experiments import code_version, run_trials
    from minieffnet.experiments.trials import Trial, train_config_for, base_model
    version = code_version()
    assert version  # a commit (+dirty) in a checkout, else the installed version
    config = base_model(TINY)
    trials = [Trial("base", s, train_config_for(TINY, config, s, tmp_path / "trials" /
                                                f"base-seed{s}"), {}) for s in (0, 1)]
    lines = []
    rows = run_trials(trials, log=lines.append)
    assert {r["code_version"] for r in rows} == {version}
    assert not any("different code versions" in line for line in lines)
    record = tmp_path / "trials" / "base-seed1" / "trial.json"
    old = json.loads(record.read_text())
    old["code_version"] = "0123456789ab"
    record.write_text(json.dumps(old))
    lines = []
    run_trials(trials, log=lines.append)
    assert any("different code versions" in line and "0123456789ab: 1" in line
               for line in lines), lines


BAD_RECORDS = {  # what an adversary writes into a finished trial's trial.json
    "truncated": lambda text, row: text[: len(text) // 2],
    "a list": lambda text, row: json.dumps([row]),
    "no top1": lambda text, row: json.dumps({k: v for k, v in row.items() if k != "top1"}),
    "top1 text": lambda text, row: json.dumps({**row, "top1": "0.5"}),
    "top1 500 %": lambda text, row: json.dumps({**row, "top1": 5.0}),
    "top1 NaN": lambda text, row: text.replace(f'"top1": {json.dumps(row["top1"])}',
                                               '"top1": NaN'),
    "another model": lambda text, row: json.dumps({**row, "model": "width-x2"}),
    "run_dir outside": lambda text, row: json.dumps({**row, "run_dir": "../../elsewhere"}),
    "bad train_config": lambda text, row: json.dumps({**row, "train_config": {"lr": -1}}),
}


@pytest.mark.parametrize("damage", list(BAD_RECORDS))
def test_a_damaged_study_record_stops_the_study_with_one_line_naming_it(tmp_path, capsys,
                                                                        damage):
    args = ["compare-scaling", "--out", str(tmp_path), "--width", "0.1", "--depth", "0.1",
            "--resolution", "16", "--train-size", "200", "--test-size", "100", "--epochs", "1",
            "--batch-size", "100", "--seeds", "1", "--targets", "2", "--strategies", "width",
            "--report"]
    record = tmp_path / "trials" / "base-seed0" / "trial.json"
    if not record.exists():
        compare_scaling(TINY, tmp_path, targets=(2.0,), seeds=(0,), strategies=("width",),
                        log=lambda line: None)
    text = record.read_text()
    record.write_text(BAD_RECORDS[damage](text, json.loads(text)))
    before = sorted(p for p in tmp_path.rglob("*") if p.name != "results.md")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(record) in err and "internal" not in err, err
    assert sorted(p for p in tmp_path.rglob("*") if p.name != "results.md") == before


def test_an_equal_cost_grid_solves_every_candidate_to_one_cost_and_names_the_margins(tmp_path):
    from minieffnet.experiments import candidate_network
    base = make_config("b0", 10, preset="cifar", width=0.25, depth=0.25, resolution=32)
    flops = count_flops(base)
    raw = [count_flops(candidate_network(base, abg)) / flops
           for abg in [(1.0, 1.0, 1.4), (1.0, 1.4, 1.0), (1.2, 1.1, 1.15)]]
    assert max(raw) / min(raw) > 1.4   # as the coefficients scale them, costs spread widely
    for abg in [(1.0, 1.0, 1.4), (1.0, 1.4, 1.0), (1.2, 1.1, 1.15)]:
        assert abs(count_flops(candidate_network(base, abg, equal_cost=0.02)) / flops - 2) <= 0.04
        assert abs(count_flops(candidate_network(base, abg, 2.0, equal_cost=0.02)) / flops
                   - 4) <= 0.08
    candidates = [(1.0, 1.0, 1.4), (1.0, 1.4, 1.0), (1.2, 1.1, 1.15), (1.2, 1.0, 1.3)]
    ranked = grid_search(TINY, tmp_path, candidates, seeds=(0, 1), log=lambda line: None,
                         equal_cost=0.05)
    assert all(abs(r["flops_ratio"] - 2) <= 0.1 for r in ranked)
    text = (tmp_path / "results.md").read_text()
    assert "Cost: every network solved to 2x the base's FLOPs ±5 %" in text
    assert "winner − runner-up" in text and "paired seeds" in text
    if ranked[0]["alpha"] != 1.2 or ranked[0]["gamma"] != 1.15:
        assert "winner − the paper's (1.2, 1.1, 1.15)" in text


def test_cli_grid_search_takes_candidates_and_phi(tmp_path, capsys):
    args = ["grid-search", "--out", str(tmp_path), "--width", "0.1", "--depth", "0.1",
            "--resolution", "16", "--train-size", "200", "--test-size", "100",
            "--epochs", "1", "--batch-size", "100", "--seeds", "1", "--phi", "2",
            "--candidates", "1,1,1.4", "1.2,1.1,1.15"]
    assert main(args) == 0
    assert sorted(p.name for p in (tmp_path / "trials").iterdir()) == [
        "a1-b1-g1.4-phi2-seed0", "a1.2-b1.1-g1.15-phi2-seed0"]
    assert "at φ = 2 (Tan & Le 2019, §3.3 Step 2)" in (tmp_path / "results.md").read_text()
    assert main(args[:-2] + ["1,2"]) == 2
    assert "--candidates: expected ALPHA,BETA,GAMMA" in capsys.readouterr().err


def test_a_timed_study_compares_its_models_at_equal_quiet_training_time(tmp_path, capsys):
    args = ["compare-scaling", "--out", str(tmp_path), "--width", "0.1", "--depth", "0.1",
            "--resolution", "16", "--train-size", "200", "--test-size", "100", "--epochs", "1",
            "--batch-size", "100", "--seeds", "1", "--targets", "2", "--strategies",
            "resolution"]
    assert main(args) == 0
    assert not (tmp_path / "timings.csv").exists()
    assert "quiet time" not in (tmp_path / "results.md").read_text()
    assert main(args + ["--report", "--time"]) == 0
    with open(tmp_path / "timings.csv") as f:
        timings = {row["model"]: float(row["step_s"]) for row in csv.DictReader(f)}
    assert set(timings) == {"base", "resolution-x2"} and all(t > 0 for t in timings.values())
    with open(tmp_path / "results.csv") as f:
        results = {row["model"]: row for row in csv.DictReader(f)}
    for model, seconds in timings.items():   # one epoch of 200 images at batch 100: 2 steps
        assert float(results[model]["quiet_train_min"]) == pytest.approx(2 * seconds / 60)
    assert "quiet time (min)" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "accuracy_vs_time.png").stat().st_size > 0


# --- arguments refused up front, before a study folder is made ----------------------------------
@pytest.mark.parametrize("step", [0.005, 5e-324])
def test_a_grid_too_fine_to_search_is_refused_at_once_naming_the_step(step):
    with pytest.raises(BadOptionError, match=rf"step {step!r} makes a grid of .* more than "
                                             r"100,000: use a larger step"):
        grid_candidates(step, 0.1)
    for bad in (0, -0.1, float("nan"), float("inf")):
        with pytest.raises(BadOptionError, match="step must be"):
            grid_candidates(bad, 0.1)
    assert len(grid_candidates(0.0135, 0.1)) > 4000  # the finest step the cap allows


@pytest.mark.parametrize("coefficients, name", [((1.2, -1.0, 1.15), "beta"),
                                                ((0.0, 1.1, 1.15), "alpha"),
                                                ((1.2, 1.1, float("nan")), "gamma")])
def test_compound_scaling_refuses_coefficients_that_are_not_positive(coefficients, name):
    # β = -1 passed α·β²·γ² > 1 and gave a complex width
    config = make_config("b0", 10, preset="cifar", width=0.25, depth=0.25)
    with pytest.raises(BadOptionError, match=rf"^{name} must be"):
        solve_strategy(config, "compound", 2.0, *coefficients)


@pytest.mark.parametrize("study, kwargs, message", [
    (compare_scaling, dict(report_only=True), "no study at"),
    (compare_scaling, dict(targets=(-1.0,)), "targets must be positive"),
    (compare_scaling, dict(long_targets=(float("nan"),)), "long_targets must be a finite"),
    (compare_scaling, dict(coefficients=(1.2, -1.0, 1.15)), "beta must be positive"),
    (grid_search, dict(report_only=True), "no study at"),
    (grid_search, dict(candidates=[(1.2, 1.1, 1.15)], rounds=0), "rounds must be"),
    (width_per_baseline, dict(widths=(1.0, -2.0)), "widths must be positive"),
    (width_per_baseline, dict(baselines=((1.0, 0.0),)), "baselines must be positive"),
    (width_per_baseline, dict(report_only=True), "no study at"),
    (budget_curve, dict(budgets=(1,), resolutions=(16, 0)), "resolutions must be a positive"),
    (budget_curve, dict(budgets=(1,), report_only=True), "no study at"),
])
def test_a_refused_study_creates_no_folder(tmp_path, monkeypatch, study, kwargs, message):
    no_training(monkeypatch)
    with pytest.raises(BadOptionError, match=message):
        study(TINY, tmp_path / "study", log=lambda line: None, **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option,value", [("--equal-cost", "-0.02"), ("--equal-cost", "2"),
                                          ("--phi", "0"), ("--phi", "nan")])
def test_grid_search_refuses_a_cost_tolerance_or_phi_out_of_range(tmp_path, capsys, option,
                                                                   value):
    args = ["grid-search", "--out", str(tmp_path / "g"), "--epochs", "1", "--seeds", "1",
            "--candidates", "1,1,1.4", option, value]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert option.lstrip("-").replace("-", "_") in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "g").exists()
