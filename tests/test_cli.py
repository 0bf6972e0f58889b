"""The command line: ``info`` reproduces the paper's Table 1; ``check-ops`` passes; every
sub-command dispatches through its parser and takes its choices from the library; the
package's public submodules are attributes of ``import minieffnet``."""
import argparse
import dataclasses
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import urllib.error

import numba
import numpy as np
import pytest
from PIL import Image

from minieffnet.checkpoint import CHECKPOINT_FILE
from minieffnet.cli import build_parser, dataset_arg, figure_arg, main, path_arg
from minieffnet.io import load_npz, save_npz_atomic
from minieffnet.experiments import PROTOCOLS, STRATEGIES
from minieffnet.optim import SCHEDULES
from minieffnet.scaling import PRESETS
from minieffnet.train_config import DATASETS, OPTIMIZERS

# Paper Table 1: (stage, resolution, channels, layers) for EfficientNet-B0 at 224.
TABLE_1 = [(1, 224, 32, 1), (2, 112, 16, 1), (3, 112, 24, 2), (4, 56, 40, 2), (5, 28, 80, 3),
           (6, 14, 112, 3), (7, 14, 192, 4), (8, 7, 320, 1), (9, 7, 1280, 1)]


def test_info_b0_matches_paper_table_1(capsys):
    assert main(["info", "b0"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\s+(\d)\s+\S.*?\s(\d+)x\d+\s+(\d+)\s+(\d+)\s", out, re.M)
    assert [tuple(map(int, r)) for r in rows] == TABLE_1
    assert "parameters: 5,288,548" in out and "0.386 B" in out


def test_info_rejects_unknown_variant(capsys):
    assert main(["info", "b9"]) == 2
    assert "unknown variant 'b9'" in capsys.readouterr().err


def test_check_ops_passes(capsys):
    assert main(["check-ops"]) == 0
    out = capsys.readouterr().out
    assert "all below 1e-06" in out and " NO" not in out


def _subcommands(parser):
    """``{name: sub-parser}`` of the ``minieffnet`` parser."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_every_subcommand_has_a_function_and_the_librarys_choices():
    commands = _subcommands(build_parser())
    assert all(callable(p.get_default("func")) for p in commands.values())
    found = {(name, a.dest): tuple(a.choices) for name, p in commands.items()
             for a in p._actions if a.choices is not None}
    study = {"dataset": DATASETS, "preset": PRESETS, "protocol": tuple(PROTOCOLS)}
    assert found == {
        ("info", "preset"): PRESETS,
        ("train", "preset"): PRESETS, ("train", "dataset"): DATASETS,
        ("train", "optimizer"): OPTIMIZERS, ("train", "schedule"): tuple(SCHEDULES),
        ("evaluate", "dataset"): DATASETS,
        **{("compare-scaling", k): v for k, v in study.items()},
        ("compare-scaling", "strategies"): STRATEGIES,
        **{("grid-search", k): v for k, v in study.items()},
        **{("width-per-baseline", k): v for k, v in study.items()},
        **{("budget-curve", k): v for k, v in study.items()},
    }


def test_public_submodules_are_attributes_of_the_package():
    """In a fresh interpreter (here every module is imported already): ``me.interop`` and the
    other public submodules work after a bare ``import minieffnet``, which imports no
    matplotlib (that would cost about a second)."""
    code = ("import sys, minieffnet as me; "
            "[me.interop.from_torchvision, me.checkpoint.load_model, me.inference.predict, "
            "me.train.Trainer, me.train_config.TrainConfig, me.experiments.compare_scaling, "
            "me.cam.class_activation_maps, me.viz.plot_training_curves, me.optim.SGD]; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


# --- every bad input a user can hand the CLI: one line naming the file or option, status 2,
# nothing changed
@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    """A trained run and, beside it, broken files of every kind the CLI reads."""
    from test_train import TINY, run

    root = tmp_path_factory.mktemp("bad_inputs")
    good = run(root / "run", dataclasses.replace(TINY, epochs=1)).run_dir
    arrays, meta = load_npz(good / CHECKPOINT_FILE)

    def variant(name, edit):
        folder = root / name
        shutil.copytree(good, folder)
        a, m = {k: v.copy() for k, v in arrays.items()}, json.loads(json.dumps(meta))
        edit(a, m)
        save_npz_atomic(folder / CHECKPOINT_FILE, a, m)
        return folder

    variant("nan", lambda a, m: a["model.classifier.weight"].flat.__setitem__(0, np.nan))
    variant("position", lambda a, m: m.__setitem__("position", "x"))
    variant("huge", lambda a, m: m["model_config"].__setitem__("num_classes", 10**9))
    variant("kernel", lambda a, m: m["model_config"]["blocks"][0].__setitem__("kernel", "3"))
    config = json.loads((variant("config", lambda a, m: None) / "config.json").read_text())
    (root / "config" / "config.json").write_text(json.dumps({**config, "variant": ["b0"]}))
    np.save(root / "weights.npy", np.zeros(3))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "ok.png")
    png = (root / "ok.png").read_bytes()
    (root / "broken.png").write_bytes(png[:len(png) // 2])
    (root / "text.png").write_text("not an image")
    (root / "empty.png").write_bytes(b"")
    (root / "other").mkdir()
    (root / "other" / "metrics.jsonl").write_text('{"mine": 1}\n')
    return root


TINY_TRAIN = ["train", "--width", "0.1", "--depth", "0.1", "--resolution", "16",
              "--train-size", "128", "--test-size", "64", "--batch-size", "64", "--epochs", "1",
              "--no-progress"]
BAD_CASES = [
    (["predict", "nan", "ok.png"], "array 'model.classifier.weight' holds NaN"),
    (["cam", "nan", "--images", "ok.png", "--out", "cam.png"], "holds NaN"),
    (["evaluate", "nan"], "nan/checkpoint.npz: array 'model.classifier.weight' holds NaN"),
    (["train", "--resume", "--out", "nan", "--no-progress"], "holds NaN or infinity"),
    (["predict", "position", "ok.png"], "metadata field 'position' is invalid"),
    (["train", "--resume", "--out", "config"], "config/config.json: unknown variant ['b0']"),
    (["predict", "huge", "ok.png"], "'model_config' is invalid: the network it describes"),
    (["evaluate", "kernel"], "kernel must be an odd positive integer, got '3'"),
    (["predict", "weights.npy", "ok.png"], "weights.npy is corrupt or truncated: not a .npz"),
    (["predict", "run", "text.png"], "text.png: cannot read the image"),
    (["predict", "run", "empty.png"], "empty.png: cannot read the image"),
    (["predict", "run", "broken.png"], "broken.png: cannot read the image"),
    (["predict", "run", "ok.png", "--top", "-3"], "argument --top: must be a positive integer"),
    ([*TINY_TRAIN, "--cutout", "40", "--out", "new"], "cutout 40 must be smaller than the images"),
    ([*TINY_TRAIN, "--depth", "1e9", "--out", "new"], "needs at least"),
    ([*TINY_TRAIN, "--resolution", "100000", "--out", "new"], "at 100000 px needs at least"),
    (["info", "--phi", "100"], "EfficientNet phi=100 needs at least"),
    ([*TINY_TRAIN, "--out", "other"], "other already holds metrics.jsonl"),
    ([*TINY_TRAIN, "--dataset", "cifar10", "--data-dir", "typo/cifar", "--out", "new"],
     "CIFAR-10 not found under typo/cifar"),
]


@pytest.mark.parametrize("argv, message", BAD_CASES, ids=[" ".join(a[:3]) for a, _ in BAD_CASES])
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_bad_input_gives_one_line_and_changes_nothing(bad_inputs, argv, message, capsys,
                                                      monkeypatch):
    monkeypatch.chdir(bad_inputs)
    monkeypatch.setattr("urllib.request.urlopen", _no_network)
    before = _fingerprint(bad_inputs)
    try:
        status = main(argv)
    except SystemExit as e:  # argparse's refusals
        status = e.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert _fingerprint(bad_inputs) == before


def _no_network(url, timeout=None):
    raise urllib.error.URLError("no network in the tests")


def _fingerprint(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()} | {str(p.relative_to(root)) + "/": b"" for p in root.rglob("*")
                               if p.is_dir()}


def test_evaluate_reads_data_where_the_user_says_never_where_the_checkpoint_says(
        bad_inputs, tmp_path, monkeypatch, capsys):
    """A checkpoint naming a data folder that lacks the data would have CIFAR downloaded
    there: evaluate reads --data-dir, else $MINIEFFNET_DATA, and only names the stored one."""
    from test_train import as_cifar10_checkpoint, write_cifar10

    run_dir = shutil.copytree(bad_inputs / "run", tmp_path / "run")
    elsewhere = tmp_path / "elsewhere"
    as_cifar10_checkpoint(run_dir, elsewhere)
    mine = write_cifar10(tmp_path / "mine")
    monkeypatch.setattr("urllib.request.urlopen", _no_network)
    monkeypatch.setenv("MINIEFFNET_DATA", str(mine))
    before = _fingerprint(tmp_path)
    assert main(["evaluate", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"note: not reading the checkpoint's data_dir ({elsewhere})" in out
    assert "data: cifar10-test, 64 images" in out
    assert _fingerprint(tmp_path) == before  # nothing downloaded, nothing written
    monkeypatch.delenv("MINIEFFNET_DATA")
    assert main(["evaluate", str(run_dir), "--data-dir", str(mine)]) == 0
    out = capsys.readouterr().out
    assert "note:" not in out and "data: cifar10-test, 64 images" in out
    assert _fingerprint(tmp_path) == before


def test_strings_from_a_checkpoint_are_printed_escaped(bad_inputs, tmp_path, capsys):
    """Class names (and any other string a checkpoint holds) reach the terminal escaped: no
    escape sequence, no forged line; an ordinary name prints as it is."""
    from minieffnet.checkpoint import save_model
    from minieffnet.model import efficientnet

    names = ["golden retriever", "cat\n  99.99 %  forged", "\x1b[2Jdog", "\u202eevil"]
    model = efficientnet("b0", 4, preset="cifar", width=0.1, depth=0.1, resolution=16)
    path = save_model(tmp_path / "odd.npz", model, {"class_names": names, "mean": [1, 2, 3],
                                                    "std": [4, 5, 6]})
    image = str(bad_inputs / "ok.png")
    assert main(["predict", str(path), image, "--top", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and lines[1] == f"{image}:" and all(s.isprintable() for s in lines)
    shown = {line.split("%  ", 1)[1] for line in lines[2:]}
    assert shown == {"golden retriever", "cat\\n  99.99 %  forged", "\\x1b[2Jdog",
                     "\\u202eevil"}

    assert main(["evaluate", str(path), "--dataset", "synthetic", "--test-size", "10"]) == 2
    err = capsys.readouterr().err
    # (one line: _one_line also joins the runs of spaces)
    assert "the checkpoint's classes (golden retriever, cat\\n 99.99 % forged, " in err
    assert len(err.splitlines()) == 1 and err.rstrip("\n").isprintable(), err

    # an error quoting a path the checkpoint names: escaped too
    run_dir = shutil.copytree(bad_inputs / "run", tmp_path / "run")
    arrays, meta = load_npz(run_dir / CHECKPOINT_FILE)
    meta["train_config"]["dataset"] = f"folder:{tmp_path}/x\x1b]0;title\x07"
    save_npz_atomic(run_dir / CHECKPOINT_FILE, arrays, meta)
    assert main(["evaluate", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "x\\x1b]0;title\\x07" in err and err.rstrip("\n").isprintable(), err


def test_debug_shows_the_traceback_and_bugs_say_internal_error(capsys, monkeypatch):
    with pytest.raises(ValueError, match="unknown variant 'b9'"):
        main(["--debug", "info", "b9"])
    with pytest.raises(ValueError, match="unknown variant 'b9'"):
        main(["info", "b9", "--debug"])  # after the sub-command too

    def bug(args):
        raise KeyError("oops")

    monkeypatch.setattr("minieffnet.cli.cmd_info", bug)  # main builds its parser anew
    assert main(["info"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("minieffnet info: internal error (KeyError): 'oops'")
    assert "--debug" in err and len(err.strip().splitlines()) == 1


def test_argparse_refusals_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "ckpt", "--top", "x"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("minieffnet predict: error: argument --top: expected a positive "
                          "integer, got 'x'")


def test_from_run_takes_the_settings_but_never_the_stored_data_root(tmp_path, monkeypatch):
    # A run folder copied from elsewhere could name any folder as its CIFAR root, where a
    # download would then write: --from-run keeps the settings, not the location.
    import minieffnet.cli as cli
    from minieffnet.train_config import TrainConfig, save_train_config
    planted = tmp_path / "planted-root"
    run = tmp_path / "foreign-run"
    run.mkdir()
    save_train_config(run, TrainConfig(dataset="cifar10", data_dir=str(planted), epochs=1))
    seen = {}

    class Stop(Exception):
        pass

    def trainer(config, **kwargs):
        seen["config"] = config
        raise Stop
    monkeypatch.setattr(cli, "Trainer", trainer)
    with pytest.raises(Stop):
        cli.cmd_train(cli.build_parser().parse_args(
            ["train", "--from-run", str(run), "--out", str(tmp_path / "new")]))
    assert seen["config"].data_dir is None and seen["config"].dataset == "cifar10"
    assert json.loads((run / "config.json").read_text())["data_dir"] == str(planted)
    assert not planted.exists()


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="nothing compiles with NUMBA_DISABLE_JIT=1")
def test_a_command_announces_numba_compiling_once_and_only_when_it_compiles(capsys,
                                                                           monkeypatch):
    from minieffnet import cli
    monkeypatch.setattr(cli._COMPILE_NOTICE, "announced", False)
    add_one, add_two = numba.njit(lambda a: a + 1), numba.njit(lambda a: a + 2)
    add_one(1)  # compiled before: calling it again compiles nothing
    with cli._announce_compiling():
        add_one(1)
    assert capsys.readouterr().err == ""
    with cli._announce_compiling():
        add_two(1)
        add_two(1.5)  # a second compile says nothing more
    assert capsys.readouterr().err == "minieffnet: compiling kernels, first run only\n"
    monkeypatch.setattr(cli._COMPILE_NOTICE, "announced", False)
    numba.njit(lambda a: a + 3)(1)  # outside a command: no line
    assert capsys.readouterr().err == ""


# --- path options: one type expands ~ and refuses what cannot be a path ------------------------
def test_every_path_option_is_read_by_one_path_type():
    commands = _subcommands(build_parser())
    typed = {(name, a.dest): a.type.__name__ for name, p in commands.items()
             for a in p._actions if a.type in (path_arg, dataset_arg, figure_arg)}
    study = {"out": "path_arg", "data_dir": "path_arg", "dataset": "dataset_arg"}
    assert typed == {
        ("train", "out_dir"): "path_arg", ("train", "data_dir"): "path_arg",
        ("train", "from_run"): "path_arg", ("train", "dataset"): "dataset_arg",
        ("evaluate", "checkpoint"): "path_arg", ("evaluate", "data_dir"): "path_arg",
        ("evaluate", "dataset"): "dataset_arg",
        ("predict", "checkpoint"): "path_arg", ("predict", "images"): "path_arg",
        ("cam", "checkpoints"): "path_arg", ("cam", "images"): "path_arg",
        ("cam", "out"): "figure_arg",
        **{(command, k): v for command in ("compare-scaling", "grid-search",
                                           "width-per-baseline", "budget-curve")
           for k, v in study.items()},
    }


class _Reached(BaseException):
    """Raised by the stand-in Trainer: the options made a valid TrainConfig."""


def _stand_in_trainer(monkeypatch):
    """Replace the CLI's Trainer by one that records the config and stops; returns the list
    the configs go to."""
    configs = []

    def trainer(config, **kw):
        configs.append(config)
        raise _Reached

    monkeypatch.setattr("minieffnet.cli.Trainer", trainer)
    return configs


def test_path_options_expand_home_like_the_dataset_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    configs = _stand_in_trainer(monkeypatch)
    user = pwd.getpwuid(os.getuid()).pw_name
    for argv in (["--out", "~/run", "--data-dir", "~/data", "--dataset", "folder:~/pets"],
                 [f"--out=~{user}/run"]):
        with pytest.raises(_Reached):
            main(["train", *argv])
    mine, theirs = configs
    assert (mine.out_dir, mine.data_dir, mine.dataset) == (
        str(tmp_path / "run"), str(tmp_path / "data"), f"folder:{tmp_path / 'pets'}")
    assert theirs.out_dir == os.path.join(pwd.getpwnam(user).pw_dir, "run")
    assert list(tmp_path.iterdir()) == []  # no literal ~ folder


PATH_AND_OPTION_CASES = [
    (["train", "--out", ""], "argument --out: expected a path, got ''"),
    (["train", "--out", "~no-such-user-minieffnet/run"],
     "argument --out: cannot expand '~no-such-user-minieffnet' in"),
    (["train", "--dataset", "folder:~no-such-user-minieffnet/x"],
     "argument --dataset: cannot expand '~no-such-user-minieffnet' in"),
    (["train", "--data-dir", "a\0b"], "argument --data-dir: expected a path"),
    (["predict", "", "x.png"], "argument checkpoint: expected a path, got ''"),
    (["compare-scaling", "--out", ""], "argument --out: expected a path"),
    (["grid-search", "--out", "missing", "--report"], "no study at missing"),
    (["budget-curve", "--out", "missing", "--report"], "no study at missing"),
    (["compare-scaling", "--out", "study", "--seeds", "0"],
     "argument --seeds: must be a positive integer, got 0"),
    (["compare-scaling", "--out", "study", "--seeds", "-2"],
     "argument --seeds: must be a positive integer, got -2"),
    (["compare-scaling", "--out", "study", "--jobs", "0"], "argument --jobs: must be a positive"),
    (["grid-search", "--out", "study", "--seeds", "1000000000000"],
     "argument --seeds: must be at most 1,000, got 1,000,000,000,000"),
    (["grid-search", "--out", "study", "--step", "0.005"],
     "step 0.005 makes a grid of 1.82e+06 (alpha, beta, gamma) points"),
    (["compare-scaling", "--out", "study", "--beta", "-1"], "beta must be positive, got -1.0"),
    (["compare-scaling", "--out", "study", "--targets", "-2"], "targets must be positive"),
    (["width-per-baseline", "--out", "study", "--widths", "1", "-1"], "widths must be positive"),
    (["budget-curve", "--out", "study", "--resolutions", "0"], "resolutions must be a positive"),
    (["train", "--warmup", "1e308", "--schedule", "warmup_cosine"],
     "TrainConfig: warmup_epochs must be a number of epochs from 0 to epochs (4)"),
    (["train", "--momentum", "1e9"], "TrainConfig: momentum must be in [0, 1), got 1000000000.0"),
    (["train", "--weight-decay", "2"], "TrainConfig: weight_decay must be in [0, 1), got 2.0"),
]


@pytest.mark.parametrize("argv, message", PATH_AND_OPTION_CASES,
                         ids=[" ".join(a) for a, _ in PATH_AND_OPTION_CASES])
def test_bad_paths_and_numbers_are_refused_before_anything_is_written(argv, message, tmp_path,
                                                                      monkeypatch, capsys):
    def no_training(*args, **kw):
        raise AssertionError("the options were accepted")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("minieffnet.cli.Trainer", no_training)
    monkeypatch.setattr("minieffnet.experiments.studies.run_trials", no_training)
    try:
        status = main(argv)
    except SystemExit as e:  # argparse's refusals
        status = e.code
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_cam_out_as_a_folder_writes_cam_png_in_it_and_prints_what_it_wrote(bad_inputs, tmp_path,
                                                                          capsys):
    figures = tmp_path / "figures"
    figures.mkdir()
    run, image = str(bad_inputs / "run"), str(bad_inputs / "ok.png")
    assert main(["cam", run, "--images", image, "--out", str(figures)]) == 0
    assert f"figure: {figures / 'cam.png'}\n" in capsys.readouterr().out
    assert [p.name for p in figures.iterdir()] == ["cam.png"]
    # a name without a suffix: matplotlib adds .png, and the path printed says so
    assert main(["cam", run, "--images", image, "--out", str(tmp_path / "maps")]) == 0
    assert f"figure: {tmp_path / 'maps.png'}\n" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures", "maps.png"]
