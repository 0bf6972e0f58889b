"""Every speed and memory benchmark of minieffnet in one Markdown table, beside PyTorch CPU.

    python benchmarks/run_all.py                 # the full run (several minutes on 2 cores)
    python benchmarks/run_all.py --write         # ... and replace the marked section of RESULTS.md
    python benchmarks/run_all.py --quick         # smoke run: tiny sizes, seconds

Rows (the header printed above the table says exactly how each is measured):

* ops: forward + backward of every op in minieffnet's op registry (minieffnet/ops/registry.py)
  that a B0 step runs on its own -- Swish, BatchNorm (alone and with fused Swish), depthwise
  conv (on Numba and, given a GPU, on CUDA), the evaluation-mode fused depthwise -> BN ->
  Swish, the stem conv, pointwise (1×1) conv, squeeze-excite, the classifier and global
  average pooling -- over every layer of B0 (imagenet preset, 64×64, batch 64, float32),
  against the ``torch.nn.functional`` equivalent under autograd; depthwise also in GB/s
  against this machine's memory bandwidth, its roofline;
* models: a B0 training step (forward, backward, SGD update) at 64×64 and with the cifar preset
  at 32×32, and B0 inference at 64×64, against torchvision's ``efficientnet_b0`` (with the
  cifar preset's strides for that row), each case in a fresh process so peak RSS is its own;
* start-up: from launching ``python -c`` to the end of its first training step, with Numba's
  cache warm and cold.

Targets (issue "Speed") stand beside the rows. PyTorch is optional: without it (or with
``--no-torch``) its columns show "–". ``--threads`` applies to Numba and PyTorch alike.
Timings taken while other jobs share the cores are noise; take final numbers on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import _common as common

# Captured before anything imports minieffnet (which sets OMP_WAIT_POLICY in os.environ), so
# that the PyTorch model processes run in the caller's environment, not in minieffnet's.
BASE_ENV = dict(os.environ)
_T0 = time.perf_counter()

RESULTS = Path(__file__).with_name("RESULTS.md")
BEGIN, END = "<!-- run_all:begin -->", "<!-- run_all:end -->"

# (mode, preset, which resolution argument) of each model row.
MODEL_CASES = {"train B0 imagenet": ("train", "imagenet", "resolution"),
               "train B0 cifar": ("train", "cifar", "cifar_resolution"),
               "infer B0 imagenet": ("infer", "imagenet", "resolution")}
RSS_SUFFIX = " peak RSS"
STARTUP_ROWS = ("start-up warm", "start-up cold")


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
            *(n + s for n in MODEL_CASES for s in ("", RSS_SUFFIX)),
            *STARTUP_ROWS)

# Issue "Speed": row -> (threshold, kind). "ratio": the ratio column (above 1 = minieffnet
# better) must reach the threshold; "at most": minieffnet's own value must not exceed it.
TARGETS = {"depthwise conv": (2.0, "ratio"),
           "train B0 imagenet": (1.5, "ratio"), "train B0 cifar": (1.5, "ratio"),
           "infer B0 imagenet": (1.0, "ratio"),
           "train B0 imagenet" + RSS_SUFFIX: (1.0, "ratio"),
           "train B0 cifar" + RSS_SUFFIX: (1.0, "ratio"),
           "start-up warm": (5.0, "at most")}

# The start-up rows time one small step so that they measure start-up (interpreter, imports,
# loading or compiling Numba kernels), not the arithmetic of a big batch.
STARTUP_BATCH = 8


@dataclass
class Row:
    """One table row. ``ratio`` is oriented so that above 1 means minieffnet is better."""
    name: str
    unit: str
    ours: float | None
    torch: float | None = None
    ratio: float | None = None
    notes: str = ""

    def target(self) -> tuple[str, str]:
        """(target text, met text) for this row; ("–", "–") where there is no target."""
        if self.name not in TARGETS:
            return "–", "–"
        threshold, kind = TARGETS[self.name]
        if kind == "at most":
            text, value = f"≤ {threshold:g} {self.unit}", self.ours
            met = None if value is None else value <= threshold
        else:
            text = f"≥ {threshold:g}×" if "RSS" not in self.name else "≤ PyTorch's"
            met = None if self.ratio is None else self.ratio >= threshold
        return text, {None: "–", True: "yes", False: "**no**"}[met]

    def markdown(self) -> str:
        """The row as a Markdown table line."""
        ratio = "–" if self.ratio is None else f"{self.ratio:.2f}×"
        target, met = self.target()
        cells = (self.name, self.unit, _num(self.ours), _num(self.torch), ratio, target, met,
                 self.notes)
        return "| " + " | ".join(cells) + " |"


def _num(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def _ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or den is None or den == 0 else num / den


# --- measurements -----------------------------------------------------------------------------
def op_rows(args, torch, bandwidth: float) -> list[Row]:
    """The op-level rows: every registered op's forward+backward over all B0 layers, in ms."""
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
    total_t = ms_t.sum() if has_peer else None
    notes = f"fwd {ms[0]:.1f} + bwd {ms[1]:.1f}"
    if has_peer:
        notes += f" (PyTorch {ms_t[0]:.1f} + {ms_t[1]:.1f})"
    notes += f"; {sum(shapes.values())} layers, {len(shapes)} shapes"
    if backend == "cuda":
        notes += "; NumPy arrays in and out, so each call copies to the GPU and back"
    elif moved.any():
        gbs = moved / ours / 1e9
        achieved = moved.sum() / ours.sum() / 1e9
        notes += (f"; {achieved:.1f} GB/s (fwd {gbs[0]:.1f}, bwd {gbs[1]:.1f}) of "
                  f"{bandwidth:.1f} GB/s measured = {100 * achieved / bandwidth:.0f} %")
    return Row(name, "ms", ms.sum(), total_t, _ratio(total_t, ms.sum()), notes)


def model_rows(args, with_torch: bool) -> list[Row]:
    """Training and inference throughput and peak memory, one fresh process per case."""
    env = common.thread_env(args.threads, BASE_ENV)
    rows = []
    for name, (mode, preset, res_arg) in MODEL_CASES.items():
        spec = {"mode": mode, "preset": preset, "resolution": getattr(args, res_arg),
                "batch": args.batch, "classes": 10, "warmup": args.warmup,
                "steps": args.repeats, "stat": args.stat, "threads": args.threads}
        results = {}
        for impl in ("minieffnet", "torch") if with_torch else ("minieffnet",):
            _progress(f"model {name}: {impl}")
            results[impl] = common.model_case_in_subprocess(__file__, {**spec, "impl": impl},
                                                            env)
        ours, theirs = results["minieffnet"], results.get("torch", {})
        if "error" in ours:
            raise RuntimeError(f"{name}: minieffnet case failed: {ours['error']}")
        size = f"{spec['resolution']}×{spec['resolution']}, batch {args.batch}"
        notes = f"{size}; {1e3 * ours['seconds']:.0f} ms/step"
        if "seconds" in theirs:
            notes += f" vs {1e3 * theirs['seconds']:.0f}"
        if "error" in theirs:
            notes += f"; PyTorch case failed: {theirs['error']}"
        ips, ips_t = ours["images_per_s"], theirs.get("images_per_s")
        rss, rss_t = ours["peak_rss_mb"], theirs.get("peak_rss_mb")
        rows.append(Row(name, "img/s", ips, ips_t, _ratio(ips, ips_t), notes))
        rows.append(Row(name + RSS_SUFFIX, "MB", rss, rss_t, _ratio(rss_t, rss),
                        "whole process, maximum resident set"))
    return rows


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
    pytorch = "PyTorch –"
    if torch is not None:
        pytorch = f"PyTorch {torch.__version__}"
        try:
            import torchvision
            pytorch += f", torchvision {torchvision.__version__}"
        except ImportError:
            pytorch += ", torchvision –"
    versions = (f"Python {platform.python_version()}, NumPy {np.__version__} (BLAS "
                f"{common.blas_name()}), Numba {numba.__version__}, {pytorch}")
    command = " ".join(["python benchmarks/run_all.py", *sys.argv[1:]])
    batch, res, cres = args.batch, args.resolution, args.cifar_resolution
    return [
        f"### `{command}` ({time.strftime('%Y-%m-%d %H:%M %Z')})",
        "",
        f"- Machine: {common.cpu_name()}, {os.cpu_count()} logical cores; load average "
        f"{load_start} at start, {common.load_average()} at end.",
        f"- Threads: {args.threads} for Numba (threading layer {layer}) and PyTorch; NumPy's "
        "BLAS as minieffnet sets it (one OpenBLAS thread, minieffnet/_threads.py).",
        f"- Versions: {versions}.",
        f"- Memory bandwidth (NumPy, one thread, best of {args.repeats}): copy "
        f"{bandwidth['copy']:.1f} GB/s, triad {bandwidth['triad']:.1f} GB/s.",
        f"- Op rows: forward + backward in ms, float32, summed over the layers of B0 "
        f"(imagenet preset, {res}×{res}, batch {batch}); each distinct shape timed once "
        f"({args.stat} of {args.repeats} calls after a warm-up) and counted once per layer "
        "that has it. Every op of minieffnet's registry that B0 runs on its own, in training "
        "mode except the fused depthwise + BN + swish row (evaluation, as inference runs it); "
        "Numba unless the row names another backend. PyTorch: `torch.nn.functional` under "
        "autograd. Depthwise GB/s: the least traffic (forward reads x, w, writes out; "
        "backward reads dout, x, writes dx, dw) over the time, against the larger bandwidth "
        "above.",
        f"- Model rows: batch {batch}, 10 classes, SGD with momentum; imagenet preset at "
        f"{res}×{res}, cifar preset at {cres}×{cres} against torchvision's efficientnet_b0 "
        f"with the same strides; {args.stat} of {args.repeats} steps after {args.warmup} "
        "warm-up steps, each case in a fresh process.",
        "- Start-up: a new `python -c` that imports minieffnet, builds the cifar-preset B0 and "
        "runs one training step; warm: Numba's cache filled by an identical earlier run, "
        "cold: an empty `NUMBA_CACHE_DIR`.",
        "- Ratio: above 1 means minieffnet is better (PyTorch ms ÷ ours, our img/s ÷ "
        "PyTorch's, PyTorch MB ÷ ours).",
        "",
    ]


def table(rows: list[Row]) -> list[str]:
    """The Markdown table lines for ``rows``."""
    return ["| benchmark | unit | minieffnet | PyTorch | ratio | target | met | notes |",
            "|---|---|---|---|---|---|---|---|", *(r.markdown() for r in rows)]


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
def parse_args(argv=None) -> argparse.Namespace:
    """Options of the command (see ``--help``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None,
                    help=f"threads for Numba and PyTorch (default: all {os.cpu_count()} "
                         "cores; 1 with --quick)")
    ap.add_argument("--repeats", type=int, default=7,
                    help="timed calls per op shape and timed steps per model case")
    ap.add_argument("--stat", choices=sorted(common.STATS), default="median",
                    help="summary of the timed calls; 'min' is steadier on a shared machine, "
                         "where noise only ever adds time")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 32×32, batch 4, 1 repeat, 1 thread, no cold start-up")
    ap.add_argument("--no-torch", action="store_true",
                    help="leave PyTorch out, as if it were not installed")
    ap.add_argument("--write", action="store_true",
                    help=f"also replace the section between {BEGIN} and {END} in "
                         "benchmarks/RESULTS.md")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # one model case, JSON in and out
    args = ap.parse_args(argv)
    args.batch, args.resolution, args.cifar_resolution, args.warmup = 64, 64, 32, 2
    args.bandwidth_floats = 32 * 2**20          # 128 MB arrays, far beyond any cache
    if args.quick:
        args.batch, args.resolution, args.repeats, args.warmup = 4, 32, 1, 1
        args.bandwidth_floats = 2**20
    if args.threads is None:
        # One thread in the smoke run: on cores other jobs keep busy, two-thread OpenMP
        # regions (PyTorch's above all) wait for descheduled workers and run 5-10x slower.
        args.threads = 1 if args.quick else os.cpu_count()
    if args.write and args.quick:
        ap.error("--quick results are a smoke test; not writing them to RESULTS.md")
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
    rows = op_rows(args, torch, max(bandwidth.values()))
    rows += model_rows(args, with_torch=torch is not None)
    rows += startup_rows(args)
    report = "\n".join(header(args, torch, bandwidth, load_start) + table(rows))
    print(report)
    if args.write:
        write_section(RESULTS, report)
        _progress(f"wrote the section between the markers in {RESULTS}")


if __name__ == "__main__":
    main()
