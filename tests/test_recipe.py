"""The short-run recipe: test-time augmentation, zero-initialised residual BN,
progressive learning, the validation split, the time budget, the named recipe, and exact
resumption with every option on.

Runs use test_train's tiny network (0.1 width and depth, 16 px, 2 steps per epoch).
"""
import dataclasses
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from minieffnet import efficientnet
from minieffnet.budget import (EPOCH_OVERHEAD_S, RESERVE, Timing, fit_epochs, fit_to_budget,
                               run_seconds, seconds_left)
from minieffnet.cli import main
from minieffnet.data import BatchLoader, load_synthetic
from minieffnet.model import MBConv
from minieffnet.ops import softmax_cross_entropy
from minieffnet.progressive import Stage, progressive_stage
from minieffnet.recipes import RECIPES, recipe_config
from minieffnet.train import Trainer, TrainingInterrupted, evaluate
from minieffnet.train_config import TrainConfig, load_splits
from minieffnet.tta import hflip, shift, tta_logits
from test_train import (TINY, TINY_ARGS, assert_same_arrays, checkpoint_arrays, interrupt_at, run,
                        without_timing)

# Every recipe option on: a validation split, TTA with shifts, zero-init, progressive
# learning 8 -> 16 px, the triangular schedule, evaluation at the end only, a time budget
# far larger than the run (so it keeps its 2 epochs, after measuring).
EVERYTHING = dataclasses.replace(
    TINY, val_size=32, tta=2, zero_init_residual=True, progressive_from=8,
    progressive_stages=2, schedule="triangular", label_smoothing=0.2, eval_each_epoch=False,
    time_budget=60.0)


def tiny_model(**kw):
    return efficientnet("b0", 10, preset="cifar", width=0.1, depth=0.1, resolution=16, **kw)


# --- test-time augmentation ------------------------------------------------------------------
def test_flip_and_shift_views():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(hflip(x), x[..., ::-1])
    down_right = shift(x, 1, 1)
    np.testing.assert_array_equal(down_right[..., 1:, 1:], x[..., :-1, :-1])
    np.testing.assert_array_equal(down_right[..., 0, 1:], x[..., 1, :-1])  # reflected row
    np.testing.assert_array_equal(shift(x, -1, -1)[..., :-1, :-1], x[..., 1:, 1:])
    assert shift(x, 1, 1).flags.c_contiguous and shift(x, 0, 0).tolist() == x.tolist()


def test_tta_logits_average_the_views():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3 * 6 * 6, 4))
    forward = lambda v: v.reshape(len(v), -1) @ w  # noqa: E731 - a linear "network"
    x = rng.standard_normal((5, 3, 6, 6))
    plain, mirror = forward(x), 0.5 * forward(x) + 0.5 * forward(x[..., ::-1])
    np.testing.assert_array_equal(tta_logits(forward, x, 0), plain)
    np.testing.assert_allclose(tta_logits(forward, x, 1), mirror, rtol=1e-14)
    np.testing.assert_allclose(tta_logits(forward, x, 1, plain=plain), mirror, rtol=1e-14)
    shifted = [0.5 * forward(v) + 0.5 * forward(v[..., ::-1])
               for v in (shift(x, -1, -1), shift(x, 1, 1))]
    np.testing.assert_allclose(tta_logits(forward, x, 2),
                               0.5 * mirror + 0.25 * shifted[0] + 0.25 * shifted[1], rtol=1e-13)
    with pytest.raises(ValueError, match="tta level"):
        tta_logits(forward, x, 3)


def test_evaluate_with_tta_is_the_mean_of_the_plain_and_flipped_logits():
    _, test = load_synthetic(10, 40, seed=0)
    model = tiny_model()
    plain = evaluate(model, test, batch_size=16, label_smoothing=0.1)
    both = evaluate(model, test, batch_size=16, label_smoothing=0.1, tta=1)
    assert {k: both[k] for k in plain} == plain  # the plain numbers are unchanged
    model.eval()
    batches = list(BatchLoader(test, 16, np.random.default_rng(0), shuffle=False,
                               resolution=16))
    logits = np.concatenate([0.5 * model(x) + 0.5 * model(np.ascontiguousarray(x[..., ::-1]))
                             for x, _ in batches])
    y = np.concatenate([y for _, y in batches])
    assert both["tta_top1"] == np.mean(logits.argmax(1) == y)
    assert both["tta_loss"] == pytest.approx(softmax_cross_entropy(logits, y, 0.1)[0],
                                             rel=1e-5)


# --- zero-initialised residual BatchNorm -----------------------------------------------------
def test_zero_init_residual_starts_every_residual_block_as_the_identity():
    default, zero = tiny_model(), tiny_model(zero_init_residual=True)
    blocks = list(zero.blocks)
    assert any(b.use_residual for b in blocks) and not all(b.use_residual for b in blocks)
    changed = {f"blocks.{i}.project.1.weight" for i, b in enumerate(blocks) if b.use_residual}
    a, b = default.state_dict(), zero.state_dict()
    for name in a:  # every other array equals the default build's
        assert np.array_equal(b[name], np.zeros_like(a[name]) if name in changed else a[name]), name
    for block in blocks:
        assert isinstance(block, MBConv)
        if block.use_residual:
            x = np.random.default_rng(1).standard_normal(
                (4, block.project[0].weight.shape[0], 8, 8)).astype(np.float32)
            for mode in (True, False):
                block.train(mode)
                np.testing.assert_array_equal(block(x), x)


# --- progressive learning --------------------------------------------------------------------
def test_progressive_stages_are_equal_groups_of_epochs():
    stages = [progressive_stage(e, 6, start_resolution=16, final_resolution=32, stages=3)
              for e in range(6)]
    assert [s.resolution for s in stages] == [16, 16, 24, 24, 32, 32]
    assert [s.regularization for s in stages] == [0, 0, 0.5, 0.5, 1, 1]
    # fewer epochs than stages: the last epoch still trains as configured
    assert [progressive_stage(e, 2, start_resolution=16, final_resolution=32, stages=3,
                              start_regularization=0.2) for e in range(2)] == [
        Stage(16, 0.2), Stage(32, 1.0)]
    assert progressive_stage(0, 1, start_resolution=16, final_resolution=32) == Stage(32, 1.0)
    assert progressive_stage(3, 5, start_resolution=None, final_resolution=32) == Stage(32, 1.0)


def test_progressive_resizing_changes_the_resolution_at_the_scheduled_epochs(tmp_path):
    config = dataclasses.replace(TINY, epochs=3, progressive_from=8, progressive_stages=3,
                                 progressive_reg_from=0.5, dropout=0.4, ema=None,
                                 out_dir=str(tmp_path))
    trainer = Trainer(config, progress=False, verbose=False)
    model, seen = trainer.model, []
    i = next(i for i, b in enumerate(model.blocks) if b.use_residual)
    forward = model.forward

    def recording_forward(x):
        seen.append((model.training, x.shape[-1], model.dropout.p,
                     model.blocks[i].drop_connect.p))
        return forward(x)

    model.forward = recording_forward
    trainer.fit()
    training = [s[1:] for s in seen if s[0]]
    assert [s[0] for s in training] == [8, 8, 12, 12, 16, 16]  # 2 steps per epoch
    scale = [s[1] / 0.4 for s in training]
    assert scale == pytest.approx([0.5, 0.5, 0.75, 0.75, 1, 1], rel=1e-15)
    rate = model.config.blocks[i].drop_connect_rate
    assert [s[2] for s in training] == pytest.approx([rate * f for f in scale], rel=1e-15)
    assert {s[1] for s in seen if not s[0]} == {16}  # evaluated at the network's resolution
    assert model.dropout.p == 0.4  # the last stage is the network as configured


# --- validation split ------------------------------------------------------------------------
def _indexed_cifar(root, name, n_train, n_test, classes):
    """A fake CIFAR .npz set whose image i has every pixel of its first row equal to i % 256
    and its second row i // 256, so subsets can be traced back to indices."""
    folder = root / name
    folder.mkdir(parents=True)
    for split, n in (("train", n_train), ("test", n_test)):
        images = np.random.default_rng(n).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        images[:, 0], images[:, 1] = (np.arange(n) % 256)[:, None, None], \
            (np.arange(n) // 256)[:, None, None]
        np.savez(folder / f"{name}_{split}.npz", images=images, labels=np.arange(n) % classes)


def _indices(dataset):
    low, high = (dataset.images[:, row, 0, 0].astype(np.int64) for row in (0, 1))
    return set((low + 256 * high).tolist())


def test_validation_split_is_held_out_balanced_and_the_same_for_every_run(tmp_path):
    _indexed_cifar(tmp_path, "cifar10", 600, 50, 10)
    base = TrainConfig(dataset="cifar10", data_dir=str(tmp_path), val_size=100)
    train, val, test = load_splits(base)
    assert len(val) == 100 and len(train) == 500 and len(test) == 50
    assert val.name == "cifar10-val" and val.class_counts().tolist() == [10] * 10
    assert not _indices(train) & _indices(val) and _indices(train) | _indices(val) == set(range(600))
    assert val.mean == train.mean  # normalised like the training images
    for other in (dataclasses.replace(base, seed=3), dataclasses.replace(base, train_size=200)):
        other_train, other_val, _ = load_splits(other)
        assert _indices(other_val) == _indices(val)
        assert _indices(other_train) <= _indices(train)
    assert len(load_splits(dataclasses.replace(base, train_size=200))[0]) == 200
    assert load_splits(dataclasses.replace(base, val_size=None))[1] is None
    with pytest.raises(ValueError, match="val_size 600 leaves no training images"):
        load_splits(dataclasses.replace(base, val_size=600))
    # synthetic: train_size keeps its meaning, the validation images come on top
    synthetic = load_splits(TrainConfig(train_size=100, val_size=20, test_size=10))
    assert [len(d) for d in synthetic] == [100, 20, 10]


def test_a_validation_run_reports_val_each_epoch_and_test_at_the_end(tmp_path):
    trainer = run(tmp_path, dataclasses.replace(TINY, val_size=32, tta=1))
    rows = trainer.history()
    assert len(trainer.val_set) == 32 and len(trainer.train_set) == 128
    first, last = set(rows[0]), set(rows[1])
    assert {"val_loss", "val_top1", "val_top5"} <= first and not any(
        k.startswith("test_") or "tta" in k for k in first)
    assert last - first == {"val_tta_loss", "val_tta_top1", "val_tta_top5", "test_loss",
                            "test_top1", "test_top5", "test_tta_loss", "test_tta_top1",
                            "test_tta_top5"}
    assert trainer.evaluate(tta=1) == pytest.approx(
        {k[5:]: rows[1][k] for k in rows[1] if k.startswith("test_")}, rel=1e-12)
    assert (tmp_path / "curves.png").exists()


def test_a_tuning_run_without_the_final_test_never_evaluates_the_test_set(tmp_path, capsys,
                                                                           monkeypatch):
    seen = []
    monkeypatch.setattr("minieffnet.train.evaluate",
                        lambda model, data, **kw: seen.append(data.name) or evaluate(
                            model, data, **kw))
    assert main(["train", *TINY_ARGS, "--val-size", "32", "--tta", "1", "--no-final-test",
                 "--out", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {"val_top1", "val_tta_top1"} <= set(rows[-1])
    assert not any(k.startswith("test_") for row in rows for k in row)
    assert seen and not any("test" in name for name in seen)
    text = capsys.readouterr().out
    assert "test top-1" not in text and "validation (32 held-out training images): top-1" in text
    with pytest.raises(ValueError, match="final_test must be True without a validation split"):
        dataclasses.replace(TINY, final_test=False)


# --- time budget -----------------------------------------------------------------------------
def test_fit_epochs_takes_the_most_that_fit():
    predicted = lambda n: 10 + 3 * n  # noqa: E731
    assert fit_epochs(40, 50, predicted) == 10 and fit_epochs(40, 5, predicted) == 5
    assert fit_epochs(13, 50, predicted) == 1
    with pytest.raises(ValueError, match="one epoch would take about 0.2 min"):
        fit_epochs(12, 50, predicted)
    timing = Timing({16: 1.0, 32: 4.0}, eval_image_s=0.01)
    assert timing.step_seconds(24) == pytest.approx(2.25)  # linear in the pixel count
    assert Timing({32: 2.0}, 0.0).step_seconds(16) == 2.0
    assert run_seconds(2, steps_per_epoch=10, timing=timing, resolutions=[16, 32],
                       eval_images=[0, 300]) == pytest.approx(50 + 3 + 2 * EPOCH_OVERHEAD_S)


def test_fit_to_budget_predicts_each_length_with_its_own_plan():
    """Progressive stages stretch with the run: every candidate length is predicted with the
    resolutions and evaluations of a run of that length."""
    timing = Timing({16: 1.0, 32: 4.0}, eval_image_s=0.01)
    half_low = lambda n: [16] * (n // 2) + [32] * (n - n // 2)  # noqa: E731
    last_only = lambda n: [0] * (n - 1) + [100]  # noqa: E731
    one = 10 * 4.0 + 1 + EPOCH_OVERHEAD_S  # one epoch: at 32 px, with the final evaluation
    assert fit_to_budget(one, 9, steps_per_epoch=10, timing=timing, resolutions=half_low,
                         eval_images=last_only) == (1, pytest.approx(one))
    three = 10 * (1 + 4 + 4) + 1 + 3 * EPOCH_OVERHEAD_S
    assert fit_to_budget(three + 1, 9, steps_per_epoch=10, timing=timing,
                         resolutions=half_low, eval_images=last_only) == (3, pytest.approx(three))
    assert seconds_left(10, time.perf_counter()) == pytest.approx(600 * (1 - RESERVE), abs=1)


def test_time_budget_fits_the_epochs_and_a_resumed_run_keeps_them(tmp_path, monkeypatch):
    """With a measured 1 s per step, 2 steps per epoch and 64 test images at 1 ms each, an
    epoch takes ~3.06 s: a budget of ~10.7 s leaves room for 3 of the 5 allowed."""
    timing = Timing({16: 1.0}, eval_image_s=0.001)
    monkeypatch.setattr(Trainer, "_measure", lambda self: timing)
    budget = dataclasses.replace(TINY, epochs=5, time_budget=11.0 / 60 / 0.97,
                                 out_dir=str(tmp_path))
    trainer = Trainer(budget, progress=False, verbose=False, on_step=interrupt_at(3))
    assert trainer.config.epochs == 3 and trainer.predicted_s == pytest.approx(
        3 * (2 + 0.064 + EPOCH_OVERHEAD_S))
    assert trainer.schedule(5) == TINY.lr / 25 / 1e4  # one_cycle over 3 epochs of 2 steps
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 3

    def measuring_again(self):
        raise AssertionError("a resumed run must not measure again")

    monkeypatch.setattr(Trainer, "_measure", measuring_again)
    resumed = Trainer(budget, resume=True, progress=False, verbose=False)
    assert resumed.config.epochs == 3 and resumed.step == 3
    assert len(resumed.fit()) == 3


def test_a_time_budget_too_small_for_one_epoch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(Trainer, "_measure", lambda self: Timing({16: 10.0}, 0.0))
    with pytest.raises(ValueError, match="one epoch would take about"):
        Trainer(dataclasses.replace(TINY, time_budget=0.1, out_dir=str(tmp_path)),
                progress=False)


# --- every option on: exact resumption, and the measurement changes nothing -----------------
@pytest.fixture(scope="module")
def everything(tmp_path_factory):
    return run(tmp_path_factory.mktemp("everything"), EVERYTHING)


def test_every_option_runs_and_reports(everything):
    rows = everything.history()
    assert everything.config.epochs == 2 and everything.predicted_s > 0
    assert set(rows[0]) == {"epoch", "step", "lr", "train_loss", "train_top1", "images_per_s",
                            "epoch_time_s", "elapsed_s"}  # evaluated at the end only
    assert {"val_top1", "val_tta_top1", "test_top1", "test_tta_top1"} <= set(rows[1])
    assert rows[1]["lr"] == everything.schedule(3)


@pytest.mark.parametrize("stop_after", [1, 3], ids=["mid-epoch-1", "mid-epoch-2"])
def test_resume_is_exact_with_every_option_on(everything, tmp_path, stop_after):
    with pytest.raises(TrainingInterrupted):
        run(tmp_path, EVERYTHING, on_step=interrupt_at(stop_after))
    resumed = Trainer(dataclasses.replace(EVERYTHING, out_dir=str(tmp_path)), resume=True,
                      progress=False, verbose=False)
    resumed.fit()
    assert_same_arrays(checkpoint_arrays(tmp_path), checkpoint_arrays(everything.run_dir))
    assert without_timing(resumed.history()) == without_timing(everything.history())


def test_cli_resume_in_a_new_process_is_exact_with_every_option_on(everything, tmp_path):
    with pytest.raises(TrainingInterrupted):
        run(tmp_path, EVERYTHING, on_step=interrupt_at(3))
    done = subprocess.run([sys.executable, "-m", "minieffnet.cli", "train", "--resume",
                           "--out", str(tmp_path), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "time budget" not in done.stdout  # the fitted epochs are kept, not measured again
    assert_same_arrays(checkpoint_arrays(tmp_path), checkpoint_arrays(everything.run_dir))


def test_measuring_for_the_time_budget_leaves_the_run_unchanged(everything, tmp_path):
    unbudgeted = run(tmp_path, dataclasses.replace(EVERYTHING, time_budget=None))
    assert_same_arrays(checkpoint_arrays(tmp_path), checkpoint_arrays(everything.run_dir))
    assert without_timing(unbudgeted.history()) == without_timing(everything.history())


# --- configuration and the named recipe ------------------------------------------------------
@pytest.mark.parametrize("field, value, match", [
    ("progressive_from", 16, "progressive_from must be a resolution between 1 and the "
                             "network's 16"),
    ("progressive_stages", 1, "progressive_stages must be an integer >= 2"),
    ("progressive_reg_from", 1.5, r"progressive_reg_from must be in \[0, 1\]"),
    ("tta", 3, r"tta must be one of \(0, 1, 2\)"),
    ("time_budget", 0, "time_budget must be a number of minutes > 0"),
    ("val_size", 0, "val_size must be a positive integer or None"),
    ("zero_init_residual", 1, "zero_init_residual must be True or False"),
])
def test_bad_recipe_fields_are_refused(field, value, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(TINY, **{field: value})


def test_triangular_warmup_sets_its_rising_phase():
    with pytest.raises(ValueError, match="between 0 and epochs .2. for triangular"):
        dataclasses.replace(TINY, schedule="triangular", warmup_epochs=2)
    from minieffnet.train_config import build_schedule
    schedule = build_schedule(dataclasses.replace(TINY, schedule="triangular",
                                                  warmup_epochs=1), steps_per_epoch=10)
    assert schedule(10) == TINY.lr and schedule(9) < schedule(10) > schedule(11)


def test_configs_written_before_the_recipe_fields_still_load():
    old = {k: v for k, v in TINY.to_dict().items()
           if k not in ("tta", "val_size", "time_budget", "progressive_from")}
    assert TrainConfig.from_dict(old) == TINY
    with pytest.raises(ValueError, match="missing fields \\['lr'\\]"):
        TrainConfig.from_dict({k: v for k, v in old.items() if k != "lr"})


def test_the_recipe_sets_every_piece_and_options_override_it():
    config = recipe_config("cifar10-30min")
    assert (config.dataset, config.width, config.depth, config.final_resolution()) == (
        "cifar10", 0.5, 0.5, 32)
    assert config.time_budget == 30 and config.tta == 2 and config.zero_init_residual
    assert config.ema is None and config.progressive_from is not None
    assert recipe_config("cifar10-30min", dataset="cifar100", lr=0.1).lr == 0.1
    assert set(RECIPES) == {"cifar10-30min"}
    with pytest.raises(ValueError, match="unknown recipe 'cifar10-5min'; choose one of "
                                         "cifar10-30min"):
        recipe_config("cifar10-5min")


def test_cli_recipe_errors(tmp_path, capsys):
    assert main(["train", "--recipe", "nope", "--out", str(tmp_path / "a")]) == 2
    assert "unknown recipe 'nope'" in capsys.readouterr().err
    assert main(["train", "--recipe", "cifar10-30min", "--resume", "--out",
                 str(tmp_path / "a")]) == 2
    assert "drop --recipe" in capsys.readouterr().err


def test_cli_options_override_what_a_recipe_sets():
    from minieffnet.cli import build_parser
    args = build_parser().parse_args([
        "train", "--recipe", "cifar10-30min", "--ema", "0.99", "--progressive-from", "none",
        "--time-budget", "none", "--no-zero-init-residual", "--eval-each-epoch", "--tta", "0"])
    given = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__}
    config = recipe_config(args.recipe, **given)
    assert (config.ema, config.progressive_from, config.time_budget) == (0.99, None, None)
    assert not config.zero_init_residual and config.eval_each_epoch and config.tta == 0
    assert vars(build_parser().parse_args(["train", "--ema", "0.99"]))["ema"] == 0.99
    assert "ema" not in vars(build_parser().parse_args(["train"]))  # the config's default


def test_the_recipe_runs_unchanged_on_a_cifar100_stand_in(tmp_path, capsys):
    """``--recipe cifar10-30min --dataset cifar100`` on a tiny fake CIFAR-100 (3 images per
    class); only the size of the network and of the run are made small."""
    _indexed_cifar(tmp_path, "cifar100", 300, 100, 100)
    out = tmp_path / "run"
    assert main(["train", "--recipe", "cifar10-30min", "--dataset", "cifar100", "--data-dir",
                 str(tmp_path), "--width", "0.1", "--depth", "0.1", "--batch-size", "64",
                 "--epochs", "1", "--no-progress", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "with TTA)" in text and "time budget 30 min: 1 epochs fit" in text
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "cifar100" and config["tta"] == 2
    assert {k: v for k, v in config.items() if k not in (
        "dataset", "data_dir", "width", "depth", "batch_size", "epochs", "out_dir")} == {
        k: v for k, v in recipe_config("cifar10-30min").to_dict().items() if k not in (
            "dataset", "data_dir", "width", "depth", "batch_size", "epochs", "out_dir")}
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0 <= last["test_top1"] <= last["test_top5"] <= 1 and "test_tta_top1" in last
    assert f"test top-1 {100 * last['test_top1']:.1f} % ({100 * last['test_tta_top1']:.1f} " \
           "% with TTA)" in text


def write_metrics(folder, rows):
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_final_accuracy_reads_the_last_evaluated_epoch_and_the_budget_plot_draws_it(tmp_path):
    from minieffnet.viz import final_accuracy, plot_accuracy_vs_budget
    short = write_metrics(tmp_path / "short", [
        {"epoch": 1, "val_top1": 0.5, "val_tta_top1": 0.52}, {"epoch": 2, "train_loss": 1.0},
        {"epoch": 3, "val_top1": 0.7, "val_tta_top1": 0.72}, {"epoch": 4, "train_loss": 0.9}])
    plain = write_metrics(tmp_path / "plain", [{"epoch": 1, "test_top1": 0.6}])
    assert final_accuracy(short) == {"split": "val", "epoch": 3, "top1": 0.7, "tta_top1": 0.72}
    assert final_accuracy(plain) == {"split": "test", "epoch": 1, "top1": 0.6, "tta_top1": None}
    with pytest.raises(ValueError, match="no evaluated epoch"):
        final_accuracy(write_metrics(tmp_path / "none", [{"epoch": 1, "train_loss": 2.0}]))
    png = plot_accuracy_vs_budget([("a", 10, short), ("a", 20, plain), ("b", 10, plain)],
                                  tmp_path / "budget.png", "title")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
