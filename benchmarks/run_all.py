"""Every speed and memory benchmark of minieffnet in one Markdown table, beside its CPU peers.

    python benchmarks/run_all.py                 # the full run (minutes; see --no-compile)
    python benchmarks/run_all.py --no-compile    # ... without torch.compile (~100 s a case)
    python benchmarks/run_all.py --write         # ... and replace the marked section of RESULTS.md
    python benchmarks/run_all.py --quick         # smoke run: tiny sizes, no torch.compile
    python benchmarks/run_all.py --only startup  # one part of the table: ops, models, startup

Rows (the header printed above the table says exactly how each is measured):

* ops: forward + backward of every op in minieffnet's op registry (minieffnet/ops/registry.py)
  that a B0 step runs on its own -- Swish, BatchNorm (alone and with fused Swish), depthwise
  conv (on Numba and, given a GPU, on CUDA), the evaluation-mode fused depthwise -> BN ->
  Swish, the stem conv, pointwise (1×1) conv, squeeze-excite, the classifier and global
  average pooling -- over every layer of B0 (imagenet preset, 64×64, batch 64, float32),
  against the ``torch.nn.functional`` equivalent under autograd (the "torch eager" column);
  depthwise also in GB/s against this machine's copy bandwidth, its roofline;
* models: training steps (forward, backward, SGD update) and inference of B0 (imagenet preset
  at 64×64, cifar preset at 32×32, batch 64) and of the scaling study's base network (cifar
  preset, width 0.25, depth 0.25; 32×32 and 16×16, batch 128), in img/s as best / median of
  the timed steps, and each process's peak RSS;
* start-up: from launching ``python -c`` to the end of its first training step, with Numba's
  cache warm and cold (an empty ``NUMBA_CACHE_DIR``).

Peers, one column each, every case of every peer in a fresh process: torchvision's twin of the
network (same width, depth and strides; its parameter count is checked against minieffnet's)
in PyTorch eager (NCHW), in ``channels_last`` and, for training, under ``torch.compile``
(inductor; the first step compiles, reported in the notes and not in the step times);
for inference, ONNX Runtime (the twin exported with ``torch.onnx.export``,
``CPUExecutionProvider``, ``--threads`` intra-op threads). A peer that is not installed
(``pip install -e .[torch,bench]``) or is switched off shows "–" and the header says why.
The ratio column compares with the fastest peer; each row's target (:data:`TARGETS`) stands
beside it. ``--threads`` applies to Numba, PyTorch and ONNX Runtime alike.
Timings taken while other jobs share the cores are noise; take final numbers on a quiet machine.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

import _common as common

# Captured before anything imports minieffnet (which sets OMP_WAIT_POLICY in os.environ), so
# that the PyTorch model processes run in the caller's environment, not in minieffnet's.
BASE_ENV = dict(os.environ)
_T0 = time.perf_counter()

RESULTS = Path(__file__).with_name("RESULTS.md")
BEGIN, END = "<!-- run_all:begin -->", "<!-- run_all:end -->"

ONNX_RUNTIME = common.ONNX_RUNTIME
PEERS = (*common.TORCH_IMPLS, ONNX_RUNTIME)            # the peer columns, in order
MODE_PEERS = {"train": common.TORCH_IMPLS,              # the peers each kind of case runs
              "infer": ("torch eager", "channels_last", ONNX_RUNTIME)}
ONNX_MODULES = ("onnx", "onnxscript", "onnxruntime")    # the bench extra: export and run
STUDY = {"preset": "cifar", "width": 0.25, "depth": 0.25}  # the scaling study's base network
STUDY_RESOLUTIONS = (32, 16)
RSS_SUFFIX = " peak RSS"
STARTUP_ROWS = ("start-up warm", "start-up cold")

# One number, or (best, median) of the timed steps; None shows "–".
Value = float | tuple[float, float] | None
HIGHER_IS_BETTER = ("img/s",)  # every other unit (ms, MB, s) is better lower


def model_cases(args) -> dict[str, dict]:
    """Every model case: row name -> the network and input (``mode``, ``preset``, ``width``,
    ``depth``, ``resolution``, ``batch``), in the table's order: B0 in every mode and preset,
    then the study network in every mode and resolution."""
    b0 = {"width": 1.0, "depth": 1.0, "batch": args.batch}
    b0_at = {"imagenet": args.resolution, "cifar": args.cifar_resolution}
    cases = {}
    for mode in MODE_PEERS:
        for preset, resolution in b0_at.items():
            cases[f"{mode} B0 {preset}"] = {**b0, "mode": mode, "preset": preset,
                                            "resolution": resolution}
    for mode in MODE_PEERS:
        for resolution in STUDY_RESOLUTIONS:
            cases[f"{mode} study {resolution} px"] = {**STUDY, "mode": mode,
                                                      "resolution": resolution,
                                                      "batch": args.study_batch}
    return cases


def op_benches() -> list[tuple]:
    """``(spec, backend, row name)`` of every op row: each op of minieffnet's registry that has
    a benchmark, under Numba and under every other backend it lists but the NumPy reference
    (the row name gets the backend in brackets: ``depthwise conv (cuda)``)."""
    from minieffnet.ops.registry import OPS  # after configure_threads: it imports Numba
    return [(spec, b, spec.bench.row if b == "numba" else f"{spec.bench.row} ({b})")
            for spec in OPS if spec.bench for b in spec.backends if b != "numpy"]


def row_names() -> tuple[str, ...]:
    """Every row of the table, in order."""
    return (*(name for _, _, name in op_benches()),
            *(n + s for n in model_cases(parse_args([])) for s in ("", RSS_SUFFIX)),
            *STARTUP_ROWS)


@dataclass(frozen=True)
class Target:
    """What one row of the table should reach (the targets column).

    ``kind``: "ratio": the median ratio against the best of ``peers`` reaches ``threshold``;
    "at most": minieffnet's value does not exceed it; "share": the row's kernels reach that
    fraction of the measured copy bandwidth. ``text`` is the target column.
    """
    kind: str
    threshold: float
    text: str
    peers: tuple[str, ...] = PEERS


_TRAIN_B0 = Target("ratio", 2.0, "≥ 2× fastest PyTorch", common.TORCH_IMPLS)
_TRAIN_STUDY = Target("ratio", 2.5, "≥ 2.5× fastest PyTorch", common.TORCH_IMPLS)
_INFER_B0 = Target("ratio", 1.0, "≥ 1× ONNX Runtime", (ONNX_RUNTIME,))
_MEMORY = Target("ratio", 1.0, "≤ torch eager's", ("torch eager",))
_TRAIN_CASES = ("train B0 imagenet", "train B0 cifar", "train study 32 px", "train study 16 px")
TARGETS = {
    "depthwise conv": Target("share", 0.5, "≥ 50 % of copy bandwidth"),
    "train B0 imagenet": _TRAIN_B0, "train B0 cifar": _TRAIN_B0,
    "train study 32 px": _TRAIN_STUDY, "train study 16 px": _TRAIN_STUDY,
    "infer B0 imagenet": _INFER_B0, "infer B0 cifar": _INFER_B0,
    **{name + RSS_SUFFIX: _MEMORY for name in _TRAIN_CASES},
    "start-up warm": Target("at most", 5.0, "≤ 5 s"),
    "start-up cold": Target("at most", 10.0, "≤ 10 s"),
}

# The start-up rows time one small step so that they measure start-up (interpreter, imports,
# loading or compiling Numba kernels), not the arithmetic of a big batch.
STARTUP_BATCH = 8


def _stats(v: float | tuple[float, float]) -> tuple[float, ...]:
    return v if isinstance(v, tuple) else (v,)


@dataclass
class Row:
    """One table row: minieffnet's value and each peer's (``peers``: column -> value), all in
    ``unit``; a peer absent from ``peers`` shows "–". ``share``: the fraction of the measured
    copy bandwidth the row's kernels reach (the depthwise row)."""
    name: str
    unit: str
    ours: Value
    peers: dict[str, Value] = field(default_factory=dict)
    notes: str = ""
    share: float | None = None

    def ratio(self, among: tuple[str, ...] = PEERS) -> tuple[Value, str | None]:
        """minieffnet against the best of the peers ``among`` that have a value, statistic by
        statistic, oriented so that above 1 means minieffnet is better (our img/s ÷ theirs;
        their ms, MB or s ÷ ours); and the peer with the best (median) value. ``(None, None)``
        where no peer has one."""
        have = {k: _stats(v) for k, v in self.peers.items() if k in among and v is not None}
        if self.ours is None or not have:
            return None, None
        higher = self.unit in HIGHER_IS_BETTER
        pick = max if higher else min
        ours = _stats(self.ours)
        best = [pick(v[i] for v in have.values()) for i in range(len(ours))]
        ratios = tuple(o / b if higher else b / o for o, b in zip(ours, best, strict=True))
        return (ratios if len(ratios) > 1 else ratios[0]), pick(have, key=lambda k: have[k][-1])

    def target(self) -> tuple[str, str]:
        """(target text, met text) for this row; ("–", "–") where there is no target. Met
        compares the median; where a ratio target's peers are not the ratio column's, the
        met text gives the ratio it used."""
        if self.name not in TARGETS:
            return "–", "–"
        t, used = TARGETS[self.name], ""
        if t.kind == "at most":
            met = None if self.ours is None else _stats(self.ours)[-1] <= t.threshold
        elif t.kind == "share":
            met = None if self.share is None else self.share >= t.threshold
        else:
            ratio, peer = self.ratio(t.peers)
            met = None if ratio is None else _stats(ratio)[-1] >= t.threshold
            if ratio is not None and (ratio, peer) != self.ratio():
                used = f" ({_stats(ratio)[-1]:.2f}× vs {peer})"
        return t.text, {None: "–", True: "yes", False: "**no**"}[met] + used

    def markdown(self) -> str:
        """The row as a Markdown table line."""
        ratio, peer = self.ratio()
        ratio_cell = "–" if ratio is None else " / ".join(f"{r:.2f}×" for r in _stats(ratio))
        if sum(v is not None for v in self.peers.values()) > 1:
            ratio_cell += f" vs {peer}"
        target, met = self.target()
        cells = (self.name, self.unit, _cell(self.ours),
                 *(_cell(self.peers.get(p)) for p in PEERS), ratio_cell, target, met, self.notes)
        return "| " + " | ".join(cells) + " |"


def _cell(v: Value) -> str:
    return "–" if v is None else " / ".join(_num(x) for x in _stats(v))


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


# --- measurements -----------------------------------------------------------------------------
def op_rows(args, torch, bandwidth: float) -> list[Row]:
    """The op-level rows: every registered op's forward+backward over all B0 layers, in ms;
    ``bandwidth``: the machine's copy bandwidth in GB/s, the depthwise row's roofline."""
    from minieffnet.scaling import make_config

    config = make_config("b0", 10, resolution=args.resolution)
    shapes_of = common.op_shapes(config, args.resolution)
    gpu_missing = common.gpu_unavailable()
    rows = []
    for spec, backend, name in op_benches():
        shapes = shapes_of.get(spec.bench.shapes)
        if backend == "cuda" and gpu_missing:
            rows.append(Row(name, "ms", None, notes=f"not timed: {gpu_missing}"))
        elif not shapes:
            rows.append(Row(name, "ms", None, notes=f"not timed: op_shapes lists no "
                                                     f"{spec.bench.shapes!r} shapes"))
        else:
            rows.append(_op_row(args, spec, backend, name, shapes,
                                None if backend == "cuda" else torch, bandwidth))
    return rows


def _op_row(args, spec, backend: str, name: str, shapes, torch, bandwidth: float) -> Row:
    """One op row: ``spec`` under ``backend`` over ``shapes`` (op_shapes' Counter)."""
    _progress(f"op {name}: {len(shapes)} distinct shapes")
    stat = common.STATS[args.stat]
    rng = np.random.default_rng(0)
    ours = np.zeros(2)     # forward, backward seconds
    theirs = np.zeros(2)
    moved = np.zeros(2)    # least bytes, forward and backward
    # Each distinct shape is timed once and counted as often as B0 has it, so the sums are
    # the op's time in one B0 step.
    for key, count in shapes.items():
        case = common.make_op_case(spec, key, args.batch, rng)
        f, b, mf, mb = common.time_ours(case, args.repeats, stat, backend)
        ours += count * np.array([f, b])
        moved += count * np.array([mf, mb])
        if torch is not None and case.torch_forward is not None:
            theirs += count * np.array(common.time_torch(case, args.repeats, stat))
    has_peer = torch is not None and spec.bench.row in common.TORCH_PEERS
    ms, ms_t = 1e3 * ours, 1e3 * theirs
    notes = f"fwd {ms[0]:.1f} + bwd {ms[1]:.1f}"
    if has_peer:
        notes += f" (PyTorch {ms_t[0]:.1f} + {ms_t[1]:.1f})"
    notes += f"; {sum(shapes.values())} layers, {len(shapes)} shapes"
    share = None
    if backend == "cuda":
        notes += "; NumPy arrays in and out, so each call copies to the GPU and back"
    elif moved.any():
        gbs = moved / ours / 1e9
        achieved = moved.sum() / ours.sum() / 1e9
        share = achieved / bandwidth
        notes += (f"; {achieved:.1f} GB/s (fwd {gbs[0]:.1f}, bwd {gbs[1]:.1f}) of "
                  f"{bandwidth:.1f} GB/s copy bandwidth = {100 * share:.0f} %")
    peers = {"torch eager": ms_t.sum()} if has_peer else {}
    return Row(name, "ms", ms.sum(), peers, notes, share)


def peers_missing(args, torch) -> dict[str, str]:
    """Why each peer that does not run here is left out: peer -> reason."""
    if torch is None:  # ONNX Runtime too: it runs the network PyTorch exports
        return dict.fromkeys(PEERS, "--no-torch" if args.no_torch else "PyTorch not installed")
    if importlib.util.find_spec("torchvision") is None:
        return dict.fromkeys(PEERS, "torchvision not installed")
    missing = {}
    if args.no_compile:
        missing["torch.compile"] = "--quick" if args.quick else "--no-compile"
    absent = [m for m in ONNX_MODULES if importlib.util.find_spec(m) is None]
    if absent:
        missing[ONNX_RUNTIME] = f"{', '.join(absent)} not installed (the bench extra)"
    return missing


def model_rows(args, torch) -> list[Row]:
    """Training and inference throughput and peak memory: every case, for minieffnet and each
    peer that runs here, in a fresh process."""
    env = common.thread_env(args.threads, BASE_ENV)
    missing = peers_missing(args, torch)
    rows = []
    for name, case in model_cases(args).items():
        spec = {**case, "classes": 10, "warmup": args.warmup, "steps": args.steps,
                "threads": args.threads}
        peers = [p for p in MODE_PEERS[case["mode"]] if p not in missing]
        results = {}
        with tempfile.TemporaryDirectory(prefix="minieffnet-onnx-") as tmp:
            twin = common.checked_twin(spec) if peers else None
            if ONNX_RUNTIME in peers:
                _progress(f"model {name}: exporting torchvision's twin to ONNX")
                spec["onnx"] = os.path.join(tmp, "twin.onnx")
                try:
                    common.export_onnx(twin, spec, spec["onnx"])
                except Exception as e:  # noqa: BLE001  (one failing peer keeps the table)
                    results[ONNX_RUNTIME] = {"error": f"export failed: {e!r}"}
            for impl in ("minieffnet", *peers):
                if impl not in results:
                    _progress(f"model {name}: {impl}")
                    results[impl] = common.model_case_in_subprocess(
                        __file__, {**spec, "impl": impl}, env)
        rows += _model_rows(name, spec, results)
    return rows


def _model_rows(name: str, spec: dict, results: dict[str, dict]) -> list[Row]:
    """The img/s and peak-RSS rows of one case from each implementation's result."""
    ours = results.pop("minieffnet")
    if "error" in ours:
        raise RuntimeError(f"{name}: minieffnet case failed: {ours['error']}")
    ran = {k: v for k, v in results.items() if "error" not in v}
    steps = ", ".join(f"{k} {_num(1e3 * v['seconds'][1])}"
                      for k, v in {"minieffnet": ours, **ran}.items())
    r = spec["resolution"]
    notes = f"{r}×{r}, batch {spec['batch']}; median ms/step: {steps}"
    if "torch.compile" in ran:
        notes += (f"; torch.compile's first step (compiling, not timed) "
                  f"{ran['torch.compile']['first_step_s']:.0f} s")
    notes += "".join(f"; {k} failed: {v['error']}" for k, v in results.items() if "error" in v)
    peers = MODE_PEERS[spec["mode"]]
    ips = {p: tuple(ran[p]["images_per_s"]) if p in ran else None for p in peers}
    rss = {p: ran[p]["peak_rss_mb"] if p in ran else None for p in peers}
    return [Row(name, "img/s", tuple(ours["images_per_s"]), ips, notes),
            Row(name + RSS_SUFFIX, "MB", ours["peak_rss_mb"], rss,
                "whole process, maximum resident set")]


def startup_rows(args) -> list[Row]:
    """Seconds to the end of the first training step in a new process, warm and cold cache."""
    env = common.thread_env(args.threads, BASE_ENV)
    _progress("start-up, warm cache")
    common.startup_seconds(STARTUP_BATCH, env)  # fills the Numba cache if it is not yet
    rows = [_startup_row("start-up warm", common.startup_seconds(STARTUP_BATCH, env))]
    if args.quick:
        return rows + [Row("start-up cold", "s", None, notes="skipped (--quick)")]
    _progress("start-up, cold cache (compiles every kernel)")
    cache = tempfile.mkdtemp(prefix="minieffnet-numba-cache-")
    try:
        cold = common.startup_seconds(STARTUP_BATCH, {**env, "NUMBA_CACHE_DIR": cache})
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return rows + [_startup_row("start-up cold", cold)]


def _startup_row(name: str, t: dict) -> Row:
    return Row(name, "s", t["total"], notes=(
        f"after launch: imports done {t['import']:.1f} s, model built {t['build']:.1f} s, "
        f"first step (batch {STARTUP_BATCH}) done {t['total']:.1f} s"))


# --- report -----------------------------------------------------------------------------------
def header(args, torch, bandwidth: dict, load_start: str) -> list[str]:
    """Markdown lines above the table: command, date, machine, versions, method."""
    import numba
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run in this process
        layer = "?"
    versions = [f"Python {platform.python_version()}", f"NumPy {np.__version__} (BLAS "
                f"{common.blas_name()})", f"Numba {numba.__version__}"]
    for label, dist in (("PyTorch", "torch"), ("torchvision", "torchvision"),
                        ("ONNX Runtime", "onnxruntime"), ("onnxscript", "onnxscript")):
        try:
            versions.append(f"{label} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{label} –")
    by_reason: dict[str, list[str]] = {}
    for peer, why in peers_missing(args, torch).items():
        by_reason.setdefault(why, []).append(peer)
    not_run = "; ".join(f"{', '.join(p)} ({why})" for why, p in by_reason.items()) or "none"
    command = " ".join(["python benchmarks/run_all.py", *sys.argv[1:]])
    batch, res, cres = args.batch, args.resolution, args.cifar_resolution
    study = ", ".join(f"{r}×{r}" for r in STUDY_RESOLUTIONS)
    return [
        f"### `{command}` ({time.strftime('%Y-%m-%d %H:%M %Z')})",
        "",
        f"- Machine: {common.cpu_name()}, {os.cpu_count()} logical cores; load average "
        f"{load_start} at start, {common.load_average()} at end.",
        f"- Threads: {args.threads} for Numba (threading layer {layer}), PyTorch and ONNX "
        "Runtime (intra-op); NumPy's BLAS as minieffnet sets it (one OpenBLAS thread, "
        "minieffnet/_threads.py).",
        f"- Versions: {', '.join(versions)}.",
        f"- Memory bandwidth (NumPy, one thread, best of {args.repeats}): copy "
        f"{bandwidth['copy']:.1f} GB/s, triad {bandwidth['triad']:.1f} GB/s.",
        f"- Op rows: forward + backward in ms, float32, summed over the layers of B0 "
        f"(imagenet preset, {res}×{res}, batch {batch}); each distinct shape timed once "
        f"({args.stat} of {args.repeats} calls after a warm-up) and counted once per layer "
        "that has it. Every op of minieffnet's registry that B0 runs on its own, in training "
        "mode except the fused depthwise + BN + swish row (evaluation, as inference runs it); "
        "Numba unless the row names another backend. torch eager: `torch.nn.functional` under "
        "autograd. Depthwise GB/s: the least traffic (forward reads x, w, writes out; "
        "backward reads dout, x, writes dx, dw) over the time, against the copy bandwidth "
        "above.",
        f"- Model rows: img/s as best / median of {args.steps} steps after {args.warmup} "
        "warm-up steps, float32, 10 classes, SGD with momentum (training) or evaluation mode "
        f"(inference); B0 with the imagenet preset at {res}×{res} and the cifar preset at "
        f"{cres}×{cres}, batch {batch}; study: the scaling study's base network (cifar preset, "
        f"width {STUDY['width']}, depth {STUDY['depth']}) at {study}, batch {args.study_batch}. "
        "Each implementation of each case in a fresh process; peak RSS is that process's.",
        "- Peers: torchvision's EfficientNet built by `_efficientnet_conf` with the same width, "
        "depth and strides (its parameter count checked equal to minieffnet's): torch eager "
        "(NCHW), channels_last (weights and input), torch.compile (training; inductor, "
        "default mode; its first step compiles, given in the notes, not in the step times); "
        "ONNX Runtime (inference; the network exported with `torch.onnx.export`, "
        "CPUExecutionProvider). Not run here: " + not_run + ".",
        "- Ratio: against the fastest peer that ran (named when several did), best / median; "
        "above 1 means minieffnet is better (our img/s ÷ theirs; their ms, MB or s ÷ ours). "
        "A target is met when the median meets it; one run on a shared machine can be noise, "
        "so count a target reached only when two consecutive runs meet it.",
        "- Start-up: a new `python -c` that imports minieffnet, builds the cifar-preset B0 and "
        "runs one training step; warm: Numba's cache filled by an identical earlier run, "
        "cold: an empty `NUMBA_CACHE_DIR`.",
        "",
    ]


def table(rows: list[Row]) -> list[str]:
    """The Markdown table lines for ``rows``."""
    columns = ("benchmark", "unit", "minieffnet", *PEERS, "ratio", "target", "met", "notes")
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
            *(r.markdown() for r in rows)]


def replace_section(text: str, body: str) -> str:
    """``text`` with everything between the run_all markers replaced by ``body``.

    The markers (``<!-- run_all:begin -->`` / ``<!-- run_all:end -->``) and everything
    outside them are kept. Without markers, a marked section is appended at the end.
    Raises ValueError if the markers are unbalanced, repeated or in the wrong order.
    """
    body = body.strip("\n")
    counts = (text.count(BEGIN), text.count(END))
    if counts == (0, 0):
        return f"{text.rstrip(chr(10))}\n\n{BEGIN}\n{body}\n{END}\n"
    begin, end = text.find(BEGIN), text.find(END)
    if counts != (1, 1) or end < begin:
        raise ValueError(f"expected one {BEGIN} followed by one {END}, found {counts[0]} "
                         f"and {counts[1]}" + (" in the wrong order" if end < begin else ""))
    return f"{text[:begin + len(BEGIN)]}\n{body}\n{text[end:]}"


def write_section(path: str | os.PathLike, body: str) -> None:
    """Replace the marked section of the file at ``path`` (see :func:`replace_section`)."""
    path = Path(path)
    path.write_text(replace_section(path.read_text(encoding="utf-8"), body), encoding="utf-8")


def _progress(message: str) -> None:
    # Progress goes to stderr so that stdout is exactly the Markdown report.
    print(f"[run_all {time.perf_counter() - _T0:5.1f} s] {message}", file=sys.stderr, flush=True)


# --- command line -----------------------------------------------------------------------------
SECTIONS = ("ops", "models", "startup")  # the table's parts, in order


def parse_args(argv=None) -> argparse.Namespace:
    """Options of the command (see ``--help``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for Numba, PyTorch and ONNX Runtime (default: all "
                         f"{os.cpu_count()} cores; 1 with --quick)")
    ap.add_argument("--repeats", type=int, default=7, help="timed calls per op shape")
    ap.add_argument("--stat", choices=sorted(common.STATS), default="median",
                    help="summary of the timed op calls; 'min' is steadier on a shared "
                         "machine, where noise only ever adds time")
    ap.add_argument("--steps", type=int, default=8,
                    help="timed steps per model case (reported as best / median)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: B0 at 32×32, batch 4, 1 repeat, 2 steps, 1 thread, no "
                         "torch.compile, no cold start-up")
    ap.add_argument("--no-torch", action="store_true",
                    help="leave PyTorch (and so ONNX Runtime) out, as if it were not "
                         "installed")
    ap.add_argument("--no-compile", action="store_true",
                    help="leave torch.compile out (compiling takes ~100 s per training case)")
    ap.add_argument("--write", action="store_true",
                    help=f"also replace the section between {BEGIN} and {END} in "
                         "benchmarks/RESULTS.md")
    ap.add_argument("--only", choices=SECTIONS, action="append",
                    help="run only this section (repeatable; default all), e.g. --only "
                         "startup to time a cold start alone")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # one model case, JSON in and out
    args = ap.parse_args(argv)
    args.batch, args.resolution, args.cifar_resolution, args.warmup = 64, 64, 32, 2
    args.study_batch = 128
    args.bandwidth_floats = 32 * 2**20          # 128 MB arrays, far beyond any cache
    if args.quick:
        args.batch, args.study_batch, args.resolution, args.warmup = 4, 4, 32, 1
        args.repeats, args.steps, args.no_compile = 1, 2, True
        args.bandwidth_floats = 2**20
    if args.threads is None:
        # One thread in the smoke run: on cores other jobs keep busy, two-thread OpenMP
        # regions (PyTorch's above all) wait for descheduled workers and run 5-10x slower.
        args.threads = 1 if args.quick else os.cpu_count()
    if args.write and args.quick:
        ap.error("--quick results are a smoke test; not writing them to RESULTS.md")
    if args.write and args.only:
        ap.error("--only runs part of the table; not writing it to RESULTS.md")
    args.only = tuple(args.only or SECTIONS)
    return args


def main(argv=None) -> None:
    """Run every benchmark, print the report, and with ``--write`` store it in RESULTS.md."""
    args = parse_args(argv)
    if args.child:
        print(json.dumps(common.run_model_case(json.loads(args.child))))
        return
    load_start = common.load_average()
    common.configure_threads(args.threads, pytorch=not args.no_torch)
    torch = None if args.no_torch else common.optional_torch()
    _progress("memory bandwidth")
    bandwidth = common.memory_bandwidth(args.bandwidth_floats, args.repeats)
    rows = op_rows(args, torch, bandwidth["copy"]) if "ops" in args.only else []
    rows += model_rows(args, torch) if "models" in args.only else []
    rows += startup_rows(args) if "startup" in args.only else []
    report = "\n".join(header(args, torch, bandwidth, load_start) + table(rows))
    print(report)
    if args.write:
        write_section(RESULTS, report)
        _progress(f"wrote the section between the markers in {RESULTS}")


if __name__ == "__main__":
    main()
