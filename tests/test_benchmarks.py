"""benchmarks/run_all.py: the smoke run, the shapes it times, the RESULTS.md section writer.

The timings themselves are not tested (they depend on the machine and its load); what is
tested is that the command runs end to end, reports every row, times the shapes the model
really has, compares against an equivalent torchvision network, and edits only its own
section of RESULTS.md.
"""
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import minieffnet
from minieffnet import ops
from minieffnet.scaling import make_config

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"

# Spelled out here, not read from run_all, so that renaming a row is a deliberate change.
EXPECTED_ROWS = (
    "swish", "batchnorm", "batchnorm + swish (fused)", "depthwise conv", "depthwise conv (cuda)",
    "depthwise + BN + swish (eval, fused)", "stem conv", "pointwise conv", "squeeze-excite",
    "linear", "global avg pool",
    "train B0 imagenet", "train B0 imagenet peak RSS",
    "train B0 cifar", "train B0 cifar peak RSS",
    "infer B0 imagenet", "infer B0 imagenet peak RSS",
    "start-up warm", "start-up cold",
)


@pytest.fixture
def run_all(monkeypatch):
    """The run_all module, imported the way the script imports its helper ``_common``."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import run_all
    return run_all


def table_rows(report: str) -> dict[str, list[str]]:
    """``{benchmark: cells}`` for every row of the Markdown table in ``report``."""
    rows = {}
    for line in report.splitlines():
        if line.startswith("| ") and not line.startswith("| benchmark "):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_quick_run_reports_every_row(run_all):
    assert run_all.row_names() == EXPECTED_ROWS
    out = subprocess.run([sys.executable, str(BENCHMARKS / "run_all.py"), "--quick"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = table_rows(out.stdout)
    assert tuple(rows) == EXPECTED_ROWS, out.stdout
    for name in ("depthwise conv", "train B0 imagenet", "start-up warm"):
        assert float(rows[name][1]) > 0, rows[name]  # minieffnet's column holds a number
    assert rows["start-up cold"][1] == "–"          # skipped in quick mode
    assert "not timed" in rows["depthwise conv (cuda)"][-1]  # the simulator times nothing
    for line in ("- Machine:", "- Threads: 1 ", "- Versions:", "- Memory bandwidth"):
        assert line in out.stdout


def test_without_pytorch_its_columns_show_a_dash(run_all):
    args = run_all.parse_args(["--quick"])
    # The CUDA row needs a GPU (the tests run the simulator), and ops whose shapes op_shapes
    # does not list are not timed: those rows hold no number.
    rows = [r for r in run_all.op_rows(args, None, bandwidth=20.0)
            if not r.notes.startswith("not timed")]
    rows.append(run_all.Row("train B0 imagenet", "img/s", 80.0))
    for row in rows:
        name, unit, ours, torch, ratio, target, met, notes = [
            c.strip() for c in row.markdown().strip("|").split("|")]
        assert float(ours) > 0 and (torch, ratio, met) == ("–", "–", "–"), row.markdown()
    assert "GB/s" in next(r for r in rows if r.name == "depthwise conv").markdown()
    warm = run_all.Row("start-up warm", "s", 1.0)  # an absolute target needs no PyTorch
    assert warm.target() == ("≤ 5 s", "yes")


def test_op_shapes_are_the_shapes_the_model_runs(run_all, monkeypatch):
    # Record the op calls of one B0 forward pass and compare with what run_all times: one
    # swish per activation, whether the model runs it as its own op or fused into BatchNorm.
    keys = {  # public op -> (benchmarked op, op_shapes key) of one call
        "depthwise_conv2d_forward":
            lambda x, w, s, *_: ("depthwise", (*x.shape[1:3], w.shape[2], s)),
        "batchnorm2d_forward": lambda x, *_: ("batchnorm", x.shape[1:3]),
        "swish_forward": lambda x, *_: ("swish", x.shape[1:3]),
        "squeeze_excite_forward":
            lambda x, w1, *_: ("squeeze_excite", (*x.shape[1:3], w1.shape[0])),
        "conv2d_forward": lambda x, w, b, s, *_: (
            ("pointwise", (x.shape[1], w.shape[0], x.shape[2])) if w.shape[2] == 1
            else ("stem", (x.shape[1], w.shape[0], x.shape[2], w.shape[2], s))),
        "linear_forward": lambda x, w, *_: ("linear", (x.shape[1], w.shape[0])),
        "global_avg_pool_forward": lambda x: ("global_avg_pool", x.shape[1:3]),
    }
    # Only the ops op_shapes lists: the registry's other benchmarks show "not timed" rows.
    seen = {op: Counter() for op in run_all.common.OPS}

    def recording(name, key):
        original = getattr(ops, name)

        def wrapped(*args, **kwargs):
            op, k = key(*args)
            if op in seen:
                seen[op][k] += 1
            if kwargs.get("activation") == "swish":  # BN and swish fused into one call
                seen["swish"][k] += 1
                seen["batchnorm_swish"][k] += 1
            return original(*args, **kwargs)
        return wrapped

    for name, key in keys.items():  # the layers call ops.<name> at run time
        monkeypatch.setattr(ops, name, recording(name, key))
    config = make_config("b0", 10, resolution=32)
    # Training mode, like the op rows (evaluation runs each depthwise stage as one fused op).
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    minieffnet.EfficientNet(config).train()(x)
    assert seen == run_all.common.op_shapes(config, 32)


@pytest.mark.torch
def test_torchvision_model_matches_the_cifar_preset(run_all):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    from minieffnet.interop import to_torchvision

    ours = minieffnet.efficientnet("b0", 10, preset="cifar").eval()
    theirs = run_all.common.torchvision_b0("cifar", 10).eval()
    result = theirs.load_state_dict(
        {k: torch.from_numpy(v) for k, v in to_torchvision(ours, strict=False).items()},
        strict=False)  # torchvision's num_batches_tracked counters are not exported
    assert not result.unexpected_keys
    assert all(k.endswith("num_batches_tracked") for k in result.missing_keys)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    # Relative to the largest logit (the freshly initialised logits are small); imagenet
    # strides on the torchvision side give an error of order 1 here.
    assert np.abs(ours(x) - expected).max() / np.abs(expected).max() < 1e-4


def test_write_replaces_only_the_marked_section(run_all, tmp_path):
    path = tmp_path / "RESULTS.md"
    before, after = "# Results\n\nold notes\n\n", "\n## Later section\n\nkept\n"
    path.write_text(f"{before}{run_all.BEGIN}\nold table\n{run_all.END}{after}")
    run_all.write_section(path, "| new | table |\n")
    run_all.write_section(path, "| newer | table |")  # twice: markers survive a rewrite
    assert path.read_text() == f"{before}{run_all.BEGIN}\n| newer | table |\n{run_all.END}{after}"

    path.write_text("# Results without markers\n")
    run_all.write_section(path, "body")
    assert path.read_text() == (f"# Results without markers\n\n{run_all.BEGIN}\nbody\n"
                                f"{run_all.END}\n")

    for broken in (f"{run_all.END}\n{run_all.BEGIN}\n", f"{run_all.BEGIN}\n",
                   f"{run_all.BEGIN}{run_all.BEGIN}{run_all.END}"):
        with pytest.raises(ValueError):
            run_all.replace_section(broken, "body")
