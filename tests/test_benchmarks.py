"""benchmarks/run_all.py and bench_cuda.py: the smoke runs, the shapes they time, the ratios
and targets, the RESULTS.md section writer.

The timings themselves are not tested (they depend on the machine and its load); what is
tested is that the commands run end to end, report every row and peer, time the shapes the
model really has, compare against an equivalent torchvision network, judge the targets as
stated, and edit only their own section of RESULTS.md.
"""
import importlib.util
import os
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
    "infer B0 cifar", "infer B0 cifar peak RSS",
    "train study 32 px", "train study 32 px peak RSS",
    "train study 16 px", "train study 16 px peak RSS",
    "infer study 32 px", "infer study 32 px peak RSS",
    "infer study 16 px", "infer study 16 px peak RSS",
    "start-up warm", "start-up cold",
)
COLUMNS = ("benchmark", "unit", "minieffnet", "torch eager", "channels_last", "torch.compile",
           "ONNX Runtime", "ratio", "target", "met", "notes")


@pytest.fixture
def run_all(monkeypatch):
    """The run_all module, imported the way the script imports its helper ``_common``."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import run_all
    return run_all


def cells(line: str) -> dict[str, str]:
    """``{column: cell}`` of one Markdown table line of run_all's table."""
    return dict(zip(COLUMNS, (c.strip() for c in line.strip().strip("|").split("|")),
                    strict=True))


def table_rows(report: str) -> dict[str, dict[str, str]]:
    """``{benchmark: {column: cell}}`` for every row of the Markdown table in ``report``."""
    lines = [line for line in report.splitlines() if line.startswith("| ")]
    assert lines[0] == "| " + " | ".join(COLUMNS) + " |", lines[0]
    return {row["benchmark"]: row for row in map(cells, lines[1:])}


def installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


@pytest.mark.parametrize("torch_ran", [False, pytest.param(True, marks=pytest.mark.torch)],
                         ids=["no-torch", "torch"])
def test_quick_run_reports_every_row_and_peer(run_all, torch_ran):
    """Without PyTorch (``--no-torch``, or not installed) every peer column is a dash; with
    it, the PyTorch and ONNX Runtime peers run beside every model row."""
    if torch_ran and not installed("torch", "torchvision"):
        pytest.skip("the torch extra is not installed")
    assert run_all.row_names() == EXPECTED_ROWS
    out = subprocess.run([sys.executable, str(BENCHMARKS / "run_all.py"), "--quick",
                          *([] if torch_ran else ["--no-torch"])],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    rows = table_rows(out.stdout)
    assert tuple(rows) == EXPECTED_ROWS, out.stdout
    for name in ("depthwise conv", "start-up warm"):
        assert float(rows[name]["minieffnet"]) > 0, rows[name]
    for name in EXPECTED_ROWS[11:27:2]:  # the model rows: best / median img/s
        best, median = map(float, rows[name]["minieffnet"].split(" / "))
        assert best >= median > 0, rows[name]
        assert rows[name]["torch.compile"] == "–"  # compiling takes minutes: not in --quick
        target = run_all.TARGETS.get(name)
        assert rows[name]["target"] == ("–" if target is None else target.text)
    for name in ("train B0 cifar", "infer study 16 px"):
        for peer in ("torch eager", "channels_last"):
            assert (rows[name][peer] != "–") == torch_ran, (peer, rows[name])
        assert (" / " in rows[name]["ratio"]) == torch_ran, rows[name]
    ort_ran = torch_ran and installed(*run_all.ONNX_MODULES)
    for name in ("infer B0 imagenet", "infer study 32 px peak RSS"):
        assert (rows[name]["ONNX Runtime"] != "–") == ort_ran, rows[name]
    assert rows["train B0 imagenet"]["ONNX Runtime"] == "–"  # inference only
    assert rows["start-up cold"]["minieffnet"] == "–"        # skipped in quick mode
    assert "not timed" in rows["depthwise conv (cuda)"]["notes"]  # the simulator times nothing
    for line in ("- Machine:", "- Threads: 1 ", "- Versions:", "- Memory bandwidth",
                 "- Peers:"):
        assert line in out.stdout
    # The header says why each peer did not run: with PyTorch, torch.compile is left out of
    # a quick run (compiling takes minutes); without it, none runs.
    peers = next(line for line in out.stdout.splitlines() if line.startswith("- Peers:"))
    assert ("torch.compile (--quick)" if torch_ran else
            "Not run here: torch eager, channels_last, torch.compile, ONNX Runtime (--no-torch)"
            ) in peers, peers


def test_only_runs_the_sections_asked_for(run_all):
    out = subprocess.run([sys.executable, str(BENCHMARKS / "run_all.py"), "--quick",
                          "--no-torch", "--only", "startup"],
                         capture_output=True, text=True, check=True)
    rows = [line.split("|")[1].strip() for line in out.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| benchmark")]
    assert rows == ["start-up warm", "start-up cold"]
    with pytest.raises(SystemExit):
        run_all.parse_args(["--only", "startup", "--write"])


def test_without_pytorch_its_columns_show_a_dash(run_all):
    args = run_all.parse_args(["--quick"])
    # The CUDA row needs a GPU (the tests run the simulator), and ops whose shapes op_shapes
    # does not list are not timed: those rows hold no number.
    rows = [r for r in run_all.op_rows(args, None, bandwidth=20.0)
            if not r.notes.startswith("not timed")]
    rows.append(run_all.Row("train B0 imagenet", "img/s", (80.0, 70.0)))
    for row in rows:
        c = cells(row.markdown())
        assert float(c["minieffnet"].split(" / ")[0]) > 0, row.markdown()
        assert all(c[p] == "–" for p in run_all.PEERS), row.markdown()
        assert c["ratio"] == "–", row.markdown()
        if row.name != "depthwise conv":  # its bandwidth target needs no PyTorch
            assert c["met"] == "–", row.markdown()
    depthwise = next(r for r in rows if r.name == "depthwise conv")
    assert "GB/s" in depthwise.notes and depthwise.share > 0
    assert depthwise.target()[1] == ("yes" if depthwise.share >= 0.5 else "**no**")
    assert run_all.Row("start-up warm", "s", 1.0).target() == ("≤ 5 s", "yes")
    assert run_all.Row("start-up cold", "s", 12.0).target() == ("≤ 10 s", "**no**")
    assert run_all.peers_missing(args, None) == dict.fromkeys(run_all.PEERS,
                                                              "PyTorch not installed")


def test_ratio_against_the_fastest_peer_and_the_targets(run_all):
    peers = {"torch eager": (100.0, 80.0), "channels_last": (90.0, 85.0), "torch.compile": None}
    row = run_all.Row("train B0 imagenet", "img/s", (220.0, 170.0), peers)
    ratio, peer = row.ratio()  # best against the best 100, median against the best 85
    assert ratio == pytest.approx((2.2, 2.0)) and peer == "channels_last"
    c = cells(row.markdown())
    assert c["minieffnet"] == "220 / 170" and c["torch.compile"] == "–"
    assert c["ratio"] == "2.20× / 2.00× vs channels_last"
    assert (c["target"], c["met"]) == ("≥ 2× fastest PyTorch", "yes")  # the median counts
    row.ours = (230.0, 160.0)
    assert row.target()[1] == "**no**"
    # Inference is judged against ONNX Runtime alone, whichever peer is fastest.
    infer = run_all.Row("infer B0 cifar", "img/s", (500.0, 450.0),
                        {"torch eager": (300.0, 280.0), "channels_last": (600.0, 560.0),
                         "ONNX Runtime": (480.0, 440.0)})
    assert infer.ratio()[1] == "channels_last"
    assert infer.target() == ("≥ 1× ONNX Runtime", "yes (1.02× vs ONNX Runtime)")
    # Memory: lower is better, judged against torch eager.
    rss = run_all.Row("train B0 cifar peak RSS", "MB", 1400.0,
                      {"torch eager": 2300.0, "channels_last": 2100.0})
    assert rss.ratio() == (pytest.approx(1.5), "channels_last")
    assert rss.target()[1].startswith("yes (1.64× vs torch eager)")
    assert run_all.Row("infer study 16 px", "img/s", (1.0, 1.0)).target() == ("–", "–")


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
@pytest.mark.parametrize("width, depth", [(1.0, 1.0), (0.25, 0.25)])
def test_torchvision_twin_matches_the_cifar_preset(run_all, width, depth):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    from minieffnet.interop import to_torchvision

    spec = {"preset": "cifar", "width": width, "depth": depth, "resolution": 32, "classes": 10}
    ours = minieffnet.efficientnet("b0", 10, preset="cifar", width=width, depth=depth).eval()
    theirs = run_all.common.checked_twin(spec).eval()  # raises unless the counts agree
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


def test_bench_cuda_runs_in_the_simulator():
    # Every thread of the simulated GPU is a Python thread, so one tiny shape: a 16×16 tile
    # block and the weight gradient's 9 blocks of 128 threads are a few thousand threads.
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    out = subprocess.run([sys.executable, str(BENCHMARKS / "bench_cuda.py"), "--shape",
                          "2", "4", "3", "1", "--batch", "1", "--repeats", "1", "--copy-mb",
                          "1"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert "- Device: Numba's CUDA simulator" in out.stdout
    lines = [line.strip("|").split("|") for line in out.stdout.splitlines()
             if line.startswith("| ") and not line.startswith("| C ")]
    parts = ("forward", "input gradient", "weight gradient")
    assert [(c[0].strip(), c[5].strip()) for c in lines] == [
        *(("2", p) for p in parts), *(("all", p) for p in parts)]
    for c in lines:
        tiled, naive, torch_ms = (v.strip() for v in c[6:9])
        assert float(tiled) > 0 and float(naive) > 0 and torch_ms == "–", c
        assert c[-1].strip().endswith("%"), c  # the tiled kernels' share of the copy



def test_the_profiler_sees_every_op_of_a_step_fused_ones_included(monkeypatch):
    # The fused evaluation layers look their ops up at call time, so profile_step's wrapping
    # of ops.* times them instead of counting them as "(outside ops)".
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import profile_step
    for name in dir(ops):  # undone after the test: instrument() replaces them for good
        if name.endswith(("_forward", "_backward")):
            monkeypatch.setattr(ops, name, getattr(ops, name))
    spent, calls = profile_step.instrument()
    model = minieffnet.efficientnet("b0", 10, preset="cifar", width=0.1, depth=0.1,
                                    resolution=16).eval()
    model(np.zeros((2, 3, 16, 16), np.float32))
    blocks = len(model.blocks.layers)
    # The stem, the head, a projection per block and an expansion per block but the first
    # (MBConv1 has none); a depthwise stage per block.
    assert calls["conv_bn_eval_forward"] == 2 + blocks + (blocks - 1)
    assert calls["depthwise_bn_eval_forward"] == blocks
