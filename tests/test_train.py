"""Training (minieffnet.train and train_config, the train / evaluate / predict commands,
minieffnet.inference, viz): exact resumption, determinism, metrics, refusal of mixed-up runs
and broken checkpoints, divergence, Ctrl-C.

Every run is tiny (128 synthetic images, a 0.1-width, 0.1-depth cifar B0 at 16 px: 2 steps
per epoch) so that the whole file takes well under a minute on 2 cores.
"""
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest
from PIL import Image

from minieffnet.checkpoint import CHECKPOINT_FILE
from minieffnet.cli import main
from minieffnet.data import CIFAR10_CLASSES, BatchLoader
from minieffnet.data_fingerprint import DataFingerprint
from minieffnet.errors import BadOptionError
from minieffnet.inference import load_trained_model, predict, read_image
from minieffnet.io import load_npz, save_npz_atomic
from minieffnet.train import Trainer, TrainingDiverged, TrainingInterrupted
from minieffnet.train_config import TrainConfig, load_train_config, save_train_config

TINY = TrainConfig(width=0.1, depth=0.1, resolution=16, train_size=128, test_size=64,
                   batch_size=64, epochs=2, lr=0.05, ema=0.9, cutout=4)
STEPS_PER_EPOCH = 2
TINY_ARGS = ["--width", "0.1", "--depth", "0.1", "--resolution", "16", "--train-size", "128",
             "--test-size", "64", "--batch-size", "64", "--epochs", "2", "--no-progress"]
RUN_FILES = {"config.json", "checkpoint.npz", "metrics.jsonl", "curves.png"}
TIMING_KEYS = {"images_per_s", "epoch_time_s", "elapsed_s"}


def run(out_dir, config=TINY, **kw):
    """Train ``config`` into ``out_dir`` to the end; returns the Trainer."""
    trainer = Trainer(dataclasses.replace(config, out_dir=str(out_dir)), progress=False,
                      verbose=False, **kw)
    trainer.fit()
    return trainer


def checkpoint_arrays(run_dir):
    return load_npz(os.path.join(run_dir, CHECKPOINT_FILE))[0]


def assert_same_arrays(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def without_timing(rows):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The reference: TINY trained for 2 epochs without a stop."""
    return run(tmp_path_factory.mktemp("straight"))


def interrupt_at(step):
    def on_step(trainer):
        if trainer.step == step:
            raise KeyboardInterrupt
    return on_step


# --- exact resumption and determinism --------------------------------------------------------
@pytest.mark.parametrize("stop_after", [1, 2, 3], ids=["mid-epoch-1", "end-of-epoch-1",
                                                       "mid-epoch-2"])
def test_resume_continues_bit_for_bit(straight, tmp_path, stop_after):
    with pytest.raises(TrainingInterrupted) as info:
        run(tmp_path, on_step=interrupt_at(stop_after))
    assert info.value.saved and info.value.step == stop_after
    assert f"step {stop_after}; saved" in str(info.value)
    assert f"minieffnet train --resume --out {tmp_path}" in str(info.value)
    assert {p.name for p in tmp_path.iterdir()} <= RUN_FILES  # no temporary file left

    resumed = Trainer(dataclasses.replace(TINY, out_dir=str(tmp_path)), resume=True,
                      progress=False)
    assert resumed.step == stop_after
    resumed.fit()
    # weights, BatchNorm statistics, optimiser and EMA state: all identical
    assert_same_arrays(checkpoint_arrays(tmp_path), checkpoint_arrays(straight.run_dir))
    assert without_timing(resumed.history()) == without_timing(straight.history())


def test_resume_after_a_whole_epoch_in_a_new_process(straight, tmp_path, monkeypatch):
    """Stop right after epoch 1 is saved, then finish with ``minieffnet train --resume`` in a
    fresh Python process: the final checkpoint equals the uninterrupted run's."""
    import minieffnet.train as train_module

    def stop(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "plot_training_curves", stop)
    with pytest.raises(TrainingInterrupted, match="interrupted at epoch 2 step 2; saved"):
        run(tmp_path)
    assert load_npz(tmp_path / CHECKPOINT_FILE)[1]["position"] == {"epoch": 1, "batch": 0,
                                                                  "step": 2}
    done = subprocess.run([sys.executable, "-m", "minieffnet.cli", "train", "--resume",
                           "--out", str(tmp_path), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert_same_arrays(checkpoint_arrays(tmp_path), checkpoint_arrays(straight.run_dir))
    assert without_timing(straight.history()) == without_timing(
        [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()])


def test_same_seed_same_weights_other_seed_other_weights(straight, tmp_path):
    again = run(tmp_path / "again")
    assert_same_arrays(again.model.state_dict(), straight.model.state_dict())
    other = Trainer(dataclasses.replace(TINY, seed=1, out_dir=str(tmp_path / "other")),
                    progress=False)
    assert not np.array_equal(other.model.stem[0].weight.data, straight.model.stem[0].weight.data)


def test_first_ctrl_c_finishes_the_step_and_saves(tmp_path):
    """A real SIGINT inside a step: the step completes, then the state is saved."""
    trainer = Trainer(dataclasses.replace(TINY, out_dir=str(tmp_path)), progress=False)
    forward = trainer.model.forward

    def forward_then_ctrl_c(x):
        if trainer.step == 0:
            os.kill(os.getpid(), signal.SIGINT)
        return forward(x)

    trainer.model.forward = forward_then_ctrl_c
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as info:
        trainer.fit()
    assert info.value.saved and info.value.step == 1
    meta = load_npz(trainer.checkpoint_path)[1]
    assert meta["position"] == {"epoch": 0, "batch": 1, "step": 1}
    assert signal.getsignal(signal.SIGINT) is handler  # restored after training


def test_interrupt_inside_a_step_keeps_the_last_checkpoint(tmp_path):
    trainer = Trainer(dataclasses.replace(TINY, out_dir=str(tmp_path)), progress=False)
    backward = trainer.model.backward
    epoch_1 = []

    def backward_interrupted(d):
        if trainer.step == 2:  # step 3, in epoch 2: the checkpoint of epoch 1 is on disk
            epoch_1.append(trainer.checkpoint_path.read_bytes())
            raise KeyboardInterrupt
        return backward(d)

    trainer.model.backward = backward_interrupted
    with pytest.raises(TrainingInterrupted) as info:
        trainer.fit()
    assert not info.value.saved
    assert "during step 3 of epoch 2: not saved" in str(info.value)
    assert "still holds epoch 2 step 2" in str(info.value)
    assert trainer.checkpoint_path.read_bytes() == epoch_1[0]
    assert {p.name for p in tmp_path.iterdir()} == RUN_FILES


def test_ctrl_c_during_evaluation_stops_at_once_and_resumes(straight, tmp_path, monkeypatch):
    import minieffnet.train as train_module
    evaluate = train_module.evaluate

    def interrupted_evaluate(*args, **kw):
        os.kill(os.getpid(), signal.SIGINT)  # stops evaluation at once: it changes nothing
        raise AssertionError("SIGINT during evaluation should have stopped here")

    monkeypatch.setattr(train_module, "evaluate", interrupted_evaluate)
    with pytest.raises(TrainingInterrupted) as info:
        run(tmp_path)
    assert info.value.saved
    assert load_npz(tmp_path / CHECKPOINT_FILE)[1]["position"]["batch"] == STEPS_PER_EPOCH
    monkeypatch.setattr(train_module, "evaluate", evaluate)
    resumed = Trainer(dataclasses.replace(TINY, out_dir=str(tmp_path)), resume=True,
                      progress=False)
    resumed.fit()
    assert_same_arrays(checkpoint_arrays(tmp_path), checkpoint_arrays(straight.run_dir))


# --- learning and metrics ------------------------------------------------------------------
def test_a_few_steps_reduce_the_training_loss(tmp_path):
    """One fixed batch of 64 images, no augmentation or dropout, constant lr: training on it
    must drive its loss well below the starting value, which is about ln(10) = 2.30."""
    config = dataclasses.replace(TINY, train_size=64, test_size=16, epochs=6, augment=False,
                                 cutout=0, dropout=0.0, drop_connect=0.0, schedule="constant",
                                 label_smoothing=0.0, ema=None, lr=0.1)
    rows = run(tmp_path, config).history()
    losses = [r["train_loss"] for r in rows]
    assert 1.8 < losses[0] < 3.0
    assert losses[-1] < 0.7 * losses[0]
    assert all(b < a for a, b in zip(losses, losses[1:]))


def test_metrics_config_and_curves(straight):
    run_dir = straight.run_dir
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES
    assert json.loads((run_dir / "config.json").read_text()) == straight.config.to_dict()
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert rows == straight.history()
    assert [r["epoch"] for r in rows] == [1, 2]
    assert [r["step"] for r in rows] == [2, 4]
    assert set(rows[0]) == {"epoch", "step", "lr", "train_loss", "train_top1", "test_loss",
                            "test_top1", "test_top5", "images_per_s", "epoch_time_s",
                            "elapsed_s"}
    for r in rows:
        assert r["lr"] == straight.schedule(r["step"] - 1)
        assert 0 <= r["train_top1"] <= 1 and 0 <= r["test_top1"] <= r["test_top5"] <= 1
        assert r["train_loss"] > 0 and r["test_loss"] > 0 and r["images_per_s"] > 0
    assert rows[1]["elapsed_s"] > rows[0]["elapsed_s"] > 0
    # the test metrics are those of the EMA weights
    assert straight.evaluate() == pytest.approx(
        {k[5:]: rows[-1][k] for k in ("test_loss", "test_top1", "test_top5")}, rel=1e-12)
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adamw"])
def test_weight_decay_spares_batchnorm_and_biases(tmp_path, optimizer):
    trainer = Trainer(dataclasses.replace(TINY, optimizer=optimizer, weight_decay=0.1,
                                          out_dir=str(tmp_path)), progress=False)
    params = trainer.model.parameters()
    assert trainer.optimizer.params == params
    for p in params:  # conv and linear weights decay; BatchNorm scale/shift and biases do not
        assert p.decay == (p.data.ndim > 1), p.name
    assert not any(p.decay for p in params if ".1.weight" in p.name or "bias" in p.name)
    before = [p.data.copy() for p in params]
    for p in params:
        p.grad = np.zeros_like(p.data)
    trainer.optimizer.lr = 0.1
    trainer.optimizer.step()  # zero gradients: only weight decay moves anything
    for p, old in zip(params, before):
        assert np.array_equal(p.data, old) != p.decay, p.name


# --- runs that must be refused ---------------------------------------------------------------
def test_folder_with_another_run_is_refused_unless_resume_or_overwrite(straight, tmp_path):
    folder = str(straight.run_dir)
    with pytest.raises(ValueError, match=r"already holds a different run \(lr 0.05 vs 0.1\)"):
        Trainer(dataclasses.replace(TINY, lr=0.1, out_dir=folder), progress=False)
    with pytest.raises(ValueError, match="already holds this run.*--resume.*--overwrite"):
        Trainer(dataclasses.replace(TINY, out_dir=folder), progress=False)
    with pytest.raises(ValueError, match=r"different config \(epochs 2 vs 3\)"):
        Trainer(dataclasses.replace(TINY, epochs=3, out_dir=folder), resume=True)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        Trainer(dataclasses.replace(TINY, out_dir=str(tmp_path)), resume=True)
    # overwrite: a fresh run replaces the old one when it starts
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in RUN_FILES:
        (copy / name).write_bytes((straight.run_dir / name).read_bytes())
    other = dataclasses.replace(TINY, epochs=1, out_dir=str(copy))
    Trainer(other, overwrite=True, progress=False).fit()
    assert json.loads((copy / "config.json").read_text())["epochs"] == 1
    assert len((copy / "metrics.jsonl").read_text().splitlines()) == 1


def test_checkpoint_of_another_architecture_or_truncated_is_refused(straight, tmp_path,
                                                                    capsys):
    wider = dataclasses.replace(TINY, width=0.25, epochs=1, out_dir=str(tmp_path / "wider"))
    with pytest.raises(TrainingInterrupted):
        Trainer(wider, progress=False, on_step=interrupt_at(1)).fit()
    (tmp_path / "wider" / CHECKPOINT_FILE).write_bytes(
        (straight.run_dir / CHECKPOINT_FILE).read_bytes())
    with pytest.raises(ValueError, match="belongs to a different run: width 0.1 vs 0.25"):
        Trainer(wider, resume=True)

    truncated = tmp_path / "truncated.npz"
    data = (straight.run_dir / CHECKPOINT_FILE).read_bytes()
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_trained_model(truncated)
    assert main(["evaluate", str(truncated)]) == 2
    assert f"checkpoint {truncated} is corrupt or truncated" in capsys.readouterr().err
    (tmp_path / "wider" / CHECKPOINT_FILE).write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        Trainer(wider, resume=True)


def test_architecture_mismatch_inside_a_checkpoint_is_named(straight, tmp_path):
    """Same run config, but the stored network differs (a file from elsewhere)."""
    arrays, meta = load_npz(straight.run_dir / CHECKPOINT_FILE)
    meta["model_config"]["head_channels"] = 999
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text((straight.run_dir / "config.json").read_text())
    save_npz_atomic(folder / CHECKPOINT_FILE, arrays, meta)
    with pytest.raises(ValueError, match="another architecture.*head_channels 999 vs"):
        Trainer(dataclasses.replace(TINY, out_dir=str(folder)), resume=True)


def _image_folder(root, classes, seed=0, first=0):
    """Random 8 x 8 PNG images in an image-folder tree: ``classes`` {split: {class: count}},
    named ``<first>.png``, ``<first + 1>.png``, ..."""
    rng = np.random.default_rng(seed)
    for split, counts in classes.items():
        for name, count in counts.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(first, first + count):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), np.uint8)).save(
                    root / split / name / f"{i}.png")
    return root


def test_resume_refuses_other_data_naming_what_changed(tmp_path, monkeypatch, capsys):
    """A class folder renamed and images added between two sessions of a run: the resumed
    run stops with one line naming each change, and leaves the run folder as it was."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the decoded-folder cache
    root = _image_folder(tmp_path / "pets", {"train": {"a": 8, "b": 8}, "test": {"a": 2, "b": 2}})
    out = tmp_path / "run"
    assert main(["train", "--dataset", f"folder:{root}", "--width", "0.1", "--depth", "0.1",
                 "--resolution", "16", "--batch-size", "8", "--epochs", "1", "--no-progress",
                 "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for split in ("train", "test"):
        (root / split / "b").rename(root / split / "c")
    _image_folder(root, {"train": {"a": 4}}, seed=1, first=8)
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert ("minieffnet train: error: the data set changed since this run started: classes "
            "['a', 'b'] -> ['a', 'c']; 16 -> 20 training images; ") in err
    assert "; other test images or labels" not in err  # renaming the class kept their pixels
    assert "normalisation mean (" in err
    assert err.rstrip().endswith("start a new run (another --out) or replace this one "
                                 "(--overwrite)")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    stored = load_npz(out / CHECKPOINT_FILE)[1]["data"]
    assert stored["class_names"] == ["a", "b"]
    assert stored["images"] == {"train": 16, "test": 4} and set(stored["blake2b"]) == {"train",
                                                                                       "test"}


def write_cifar10(root, seed=0, n=100):
    """CIFAR-10 in its .npz form under ``root``: ``n`` random images per split."""
    rng = np.random.default_rng(seed)
    (root / "cifar10").mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        np.savez(root / "cifar10" / f"cifar10_{split}.npz",
                 images=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                 labels=np.arange(n) % 10)
    return root


def as_cifar10_checkpoint(run_dir, data_dir):
    """Rewrite the checkpoint in ``run_dir`` as if its run had trained on CIFAR-10 read from
    ``data_dir``: a checkpoint that names a folder (for evaluate and cam to ignore)."""
    arrays, meta = load_npz(run_dir / CHECKPOINT_FILE)
    meta["train_config"].update(dataset="cifar10", data_dir=str(data_dir))
    meta["class_names"] = list(CIFAR10_CLASSES)
    return save_npz_atomic(run_dir / CHECKPOINT_FILE, arrays, meta)


def test_resume_checks_the_data_itself_not_where_it_is(tmp_path):
    """The data may move (``data_dir`` is not part of the run), but other images in the same
    number are other data: refused."""
    config = dataclasses.replace(TINY, dataset="cifar10", epochs=1, val_size=10,
                                 data_dir=str(write_cifar10(tmp_path / "here")),
                                 out_dir=str(tmp_path / "run"))
    run(tmp_path / "run", config)
    moved = dataclasses.replace(config, data_dir=str(write_cifar10(tmp_path / "there")))
    Trainer(moved, resume=True, progress=False)  # the same arrays elsewhere: resumes
    other = dataclasses.replace(config, data_dir=str(write_cifar10(tmp_path / "other", seed=1)))
    with pytest.raises(ValueError, match=r"changed since this run started: other training "
                                         r"images or labels \(as many\); other validation "
                                         r"images or labels \(as many\); other test images "
                                         r"or labels \(as many\); normalisation mean"):
        Trainer(other, resume=True, progress=False)


def test_a_run_without_a_data_fingerprint_resumes_as_before(straight, tmp_path):
    """Checkpoints written before runs recorded their data hold none: such a run resumes
    unchecked, bit for bit, and its next checkpoint records the data; a malformed record is
    named."""
    with pytest.raises(TrainingInterrupted):
        run(tmp_path, on_step=interrupt_at(1))
    arrays, meta = load_npz(tmp_path / CHECKPOINT_FILE)
    recorded = meta.pop("data")
    save_npz_atomic(tmp_path / CHECKPOINT_FILE, arrays, meta)
    resumed = Trainer(dataclasses.replace(TINY, out_dir=str(tmp_path)), resume=True,
                      progress=False)
    resumed.fit()
    assert_same_arrays(checkpoint_arrays(tmp_path), checkpoint_arrays(straight.run_dir))
    assert load_npz(tmp_path / CHECKPOINT_FILE)[1]["data"] == recorded

    arrays, meta = load_npz(tmp_path / CHECKPOINT_FILE)
    save_npz_atomic(tmp_path / CHECKPOINT_FILE, arrays, {**meta, "data": {**recorded,
                                                                          "images": [128]}})
    with pytest.raises(ValueError, match=r"metadata field 'data' is invalid: data: images must "
                                         r"map train, test"):
        Trainer(dataclasses.replace(TINY, out_dir=str(tmp_path)), resume=True, progress=False)


def test_data_fingerprint_changes_are_worded_and_read_back():
    fp = DataFingerprint(("a", "b"), {"train": 16, "test": 4}, (1.0, 2.0, 3.0), (4.0, 5.0, 6.0),
                         {"train": "00", "test": "11"})
    assert DataFingerprint.from_dict(json.loads(json.dumps(fp.to_dict()))) == fp
    assert fp.changes_since(fp) == []
    other = DataFingerprint(("a", "c\x1b"), {"train": 20, "val": 2, "test": 4}, (1.0, 2.5, 3.0),
                            (4.0, 5.0, 6.0), {"train": "01", "val": "22", "test": "12"})
    assert other.changes_since(fp) == [
        "classes ['a', 'b'] -> ['a', 'c\\x1b']", "16 -> 20 training images",
        "no -> 2 validation images", "other test images or labels (as many)",
        "normalisation mean (1.00, 2.00, 3.00) -> (1.00, 2.50, 3.00)"]
    many = [f"c{i}" for i in range(20)]
    renamed = DataFingerprint(tuple(many[:-1] + ["x"]), *dataclasses.astuple(fp)[1:])
    reordered = DataFingerprint(tuple(reversed(many)), *dataclasses.astuple(fp)[1:])
    start = DataFingerprint(tuple(many), *dataclasses.astuple(fp)[1:])
    assert renamed.changes_since(start) == ["20 -> 20 classes (without ['c19'], new ['x'])"]
    assert reordered.changes_since(start) == ["the order of the 20 classes"]
    for bad, message in [({**fp.to_dict(), "extra": 1}, "unknown fields \\['extra'\\]"),
                         ({**fp.to_dict(), "class_names": []}, "class_names must be"),
                         ({**fp.to_dict(), "std": [1, 0, 1]}, "data std must be"),
                         ({**fp.to_dict(), "images": {"train": -1, "test": 4}}, "images must"),
                         ({**fp.to_dict(), "blake2b": {"train": "00"}}, "blake2b must map")]:
        with pytest.raises(ValueError, match=message):
            DataFingerprint.from_dict(bad)


def test_labels_out_of_range_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(100) % 10
    labels[7] = 10  # CIFAR-10 has classes 0..9
    (tmp_path / "cifar10").mkdir()
    np.savez(tmp_path / "cifar10" / "cifar10_train.npz", images=images, labels=labels)
    np.savez(tmp_path / "cifar10" / "cifar10_test.npz", images=images, labels=labels % 10)
    config = dataclasses.replace(TINY, dataset="cifar10", data_dir=str(tmp_path),
                                 out_dir=str(tmp_path / "run"))
    with pytest.raises(ValueError, match=r"cifar10_train.npz: 'labels' must lie in 0..9, "
                                         r"got 0..10"):
        Trainer(config)


def test_divergence_stops_with_epoch_and_step_and_keeps_the_checkpoint(tmp_path):
    saved = []

    def poison(trainer):  # after step 3 (epoch 2), break a weight: step 4's logits are NaN
        if trainer.step == 3:
            saved.append(trainer.checkpoint_path.read_bytes())
            trainer.model.classifier.weight.data[0, 0] = np.nan

    with pytest.raises(TrainingDiverged, match=r"logits are not finite at epoch 2, step 4 "
                                               r"\(batch 2 of 2\)") as info:
        run(tmp_path, on_step=poison)
    assert (info.value.epoch, info.value.step) == (2, 4)
    assert (tmp_path / CHECKPOINT_FILE).read_bytes() == saved[0]
    assert load_npz(tmp_path / CHECKPOINT_FILE)[1]["position"]["epoch"] == 1
    assert {p.name for p in tmp_path.iterdir()} == RUN_FILES


# --- command line ------------------------------------------------------------------------------
def test_cli_train_evaluate_predict(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY_ARGS, "--ema", "0.9", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for name in ("checkpoint.npz", "metrics.jsonl", "curves.png"):
        assert str(out / name) in text
    assert "test top-1" in text

    assert main(["train", *TINY_ARGS, "--out", str(out)]) == 2  # the folder holds a run
    assert "already holds a different run (ema 0.9 vs None)" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(out)]) == 0  # finished: nothing to do
    capsys.readouterr()

    assert main(["evaluate", str(out)]) == 0
    text = capsys.readouterr().out
    assert "EMA weights after 2 of 2 epochs" in text and "64 images" in text
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert f"top-1 {100 * last['test_top1']:.2f} %" in text  # the same evaluation

    rgb = tmp_path / "rgb.png"
    matplotlib.image.imsave(rgb, np.random.default_rng(0).random((32, 32, 3)))
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.full((20, 24, 4), 200, np.uint8)).save(rgba)
    assert main(["predict", str(out / CHECKPOINT_FILE), str(rgb), str(rgba)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert f"{rgb}:" in lines and f"{rgba}:" in lines
    shown = [line for line in lines if line.strip().endswith(("horizontal", "vertical"))]
    assert len(shown) == 10
    assert sum(float(line.split("%")[0]) for line in shown[:5]) <= 100.01

    gray = tmp_path / "gray.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(gray)
    assert main(["predict", str(out), str(gray)]) == 2
    err = capsys.readouterr().err
    assert str(gray) in err and "grayscale image of shape (32, 32)" in err


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_cli_diverged_run_exits_1(tmp_path, capsys):
    assert main(["train", *TINY_ARGS, "--lr", "1e30", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "training diverged: the activations are not finite" in err and "epoch 1, step" in err


def test_predict_matches_evaluation_on_a_dataset_image(straight, tmp_path):
    """An image read back from PNG gives the probabilities the model gives its test batch."""
    trained = load_trained_model(straight.run_dir)
    image = straight.test_set.images[0]
    path = tmp_path / "img.png"
    matplotlib.image.imsave(path, image)
    np.testing.assert_array_equal(read_image(path), image)
    probs = predict(trained, [image])
    assert probs.shape == (1, 10) and probs.sum() == pytest.approx(1)
    x, _ = next(iter(BatchLoader(straight.test_set, 1, np.random.default_rng(0),
                                 shuffle=False, resolution=16)))
    with straight.ema.applied():
        logits = straight.model.eval()(x)[0].astype(np.float64)
    straight.model.train()
    np.testing.assert_allclose(probs[0], np.exp(logits) / np.exp(logits).sum(), rtol=1e-6)


def test_a_bare_model_checkpoint_can_be_used_for_prediction(straight, tmp_path):
    """minieffnet.checkpoint.save_model files work too, with names and statistics as extras."""
    from minieffnet.checkpoint import save_model
    train = straight.train_set
    path = save_model(tmp_path / "model.npz", straight.model, extra_meta={
        "class_names": list(train.class_names), "mean": list(straight.mean),
        "std": list(straight.std)})
    trained = load_trained_model(path)
    assert trained.class_names == train.class_names and trained.train_config is None
    image = straight.test_set.images[:1]
    x, _ = next(iter(BatchLoader(straight.test_set, 1, np.random.default_rng(0),
                                 shuffle=False, resolution=16)))
    logits = straight.model.eval()(x)[0].astype(np.float64)
    straight.model.train()
    np.testing.assert_allclose(predict(trained, [image[0]])[0],
                               np.exp(logits) / np.exp(logits).sum(), rtol=1e-6)


# --- the configuration's ranges and its atomic write -------------------------------------------
@pytest.mark.parametrize("field, value, message", [
    ("momentum", 1e9, "momentum must be in [0, 1)"),
    ("momentum", 1.0, "momentum must be in [0, 1)"),
    ("weight_decay", 3.0, "weight_decay must be in [0, 1)"),
    ("warmup_epochs", 1e308, "warmup_epochs must be a number of epochs from 0 to epochs (2)"),
    ("warmup_epochs", 2.5, "warmup_epochs must be a number of epochs from 0 to epochs (2)"),
    ("out_dir", "", "out_dir must be a path (a non-empty str) or None"),
    ("data_dir", "", "data_dir must be a path (a non-empty str) or None"),
])
def test_config_refuses_out_of_range_values_naming_the_field(field, value, message):
    # warmup_cosine: a rising schedule would refuse any warm-up as long as the run already
    base = dataclasses.replace(TINY, schedule="warmup_cosine")
    with pytest.raises(BadOptionError, match=re.escape(f"TrainConfig: {message}")):
        dataclasses.replace(base, **{field: value})


def test_config_ranges_keep_their_edges():
    edges = dataclasses.replace(TINY, schedule="warmup_cosine", momentum=0.0, nesterov=False,
                                weight_decay=0.0, warmup_epochs=2)
    assert (edges.momentum, edges.weight_decay, edges.warmup_epochs) == (0.0, 0.0, 2)
    assert dataclasses.replace(TINY, momentum=0.99, weight_decay=0.5).momentum == 0.99


def test_config_json_is_not_written_through_a_link_planted_at_a_temporary_name(tmp_path):
    """A dangling link at the name a fixed-name temporary file would take must not carry the
    write outside the run folder, nor become the run's config.json."""
    run_dir, outside = tmp_path / "run", tmp_path / "outside"
    run_dir.mkdir()
    (run_dir / ".config.json.tmp").symlink_to(outside / "planted.json")
    path = save_train_config(run_dir, TINY)
    assert not path.is_symlink() and load_train_config(run_dir) == TINY
    assert not outside.exists()
    assert sorted(p.name for p in run_dir.iterdir()) == [".config.json.tmp", "config.json"]
