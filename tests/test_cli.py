"""The command line: ``info`` reproduces the paper's Table 1; ``check-ops`` passes; every
sub-command dispatches through its parser and takes its choices from the library; the
package's public submodules are attributes of ``import minieffnet``."""
import argparse
import re
import subprocess
import sys

from minieffnet.cli import build_parser, main
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
