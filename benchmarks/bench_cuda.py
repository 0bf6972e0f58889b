"""minieffnet's numba.cuda depthwise kernels against PyTorch's depthwise convolution on a GPU.

    python benchmarks/bench_cuda.py                    # every B0 shape at 224×224, batch 64
    python benchmarks/bench_cuda.py --resolution 64    # the sizes of run_all.py's CPU rows
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/bench_cuda.py --shape 2 6 3 1 --batch 1 \\
        --repeats 1 --copy-mb 1                        # Numba's simulator, a tiny shape

For every distinct depthwise shape of B0 (imagenet preset; ``_common.op_shapes``), the
forward, the input gradient and the weight gradient of minieffnet's kernels
(``minieffnet/ops/depthwise_cuda.py`` through its ``*_device`` entry points, device arrays in
and out), tiled and naive, and of PyTorch on CUDA tensors (``F.conv2d(groups=C)`` and
``aten.convolution_backward``, the calls autograd makes; cuDNN or PyTorch's own depthwise
kernels, whichever it picks with ``cudnn.benchmark`` on). Each call is timed by CUDA events
recorded just before and after it (the kernel, plus any launch overhead the GPU waits for);
the table gives the ``--stat`` of ``--repeats`` calls after a warm-up in ms, and GB/s of the
least traffic the call must cause (``_common.depthwise_bytes``) against the device's
bandwidth, measured as a device-to-device copy. The "all" rows sum each part over B0's
layers, every shape counted once per layer that has it.

Without a GPU, with ``NUMBA_ENABLE_CUDASIM=1`` set, the kernels run in Numba's simulator, one
Python thread per GPU thread (~0.2 ms each): the table is printed with wall-clock times that
say nothing about a GPU, so only tiny ``--shape``s are practical there; PyTorch shows "–".
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections import defaultdict
from importlib import metadata
from typing import Callable, Iterator
from unittest import mock

import numpy as np
from numba import config, cuda

import _common as common
from minieffnet.backend import unavailable_reason
from minieffnet.ops import depthwise_cuda as dc
from minieffnet.ops.padding import depthwise_geometry
from minieffnet.scaling import make_config

PARTS = ("forward", "input gradient", "weight gradient")
# depthwise_cuda's kernels, by the prefix of their names: which part each one computes.
KERNEL_PARTS = {"_forward_": "forward", "_dx_": "input gradient", "_dw_": "weight gradient"}
METHODS = dc.METHODS                  # ("tiled", "naive")
SIMULATOR = bool(config.ENABLE_CUDASIM)


def timed(call: Callable[[], object], new_event: Callable) -> Callable[[], float]:
    """Run ``call()`` between two events from ``new_event`` (numba's or PyTorch's: both have
    ``record()`` and ``elapsed_time``); returns a function that gives the milliseconds between
    them once the device has synchronized. The simulator records no event times and runs
    every launch to completion, so there the wall time of the call stands in."""
    if SIMULATOR:
        t = time.perf_counter()
        call()
        ms = 1e3 * (time.perf_counter() - t)
        return lambda: ms
    start, end = new_event(), new_event()
    start.record()
    call()
    end.record()
    return lambda: start.elapsed_time(end)


class _TimedKernel:
    """Stands in for one of depthwise_cuda's kernels: every launch ``kernel[grid, block](...)``
    runs the real kernel, timed by :func:`timed`, and appends the timing to ``record``."""

    def __init__(self, kernel, record: list):
        self.kernel, self.record = kernel, record

    def __getitem__(self, launch_config):
        launch = self.kernel[launch_config]
        return lambda *args: self.record.append(timed(lambda: launch(*args), cuda.event))


@contextlib.contextmanager
def timed_kernels() -> Iterator[dict[str, list]]:
    """Within the block, every launch of a depthwise_cuda kernel is timed; yields ``part ->
    [timing, ...]`` in launch order (see :data:`KERNEL_PARTS`)."""
    records: dict[str, list] = defaultdict(list)
    with contextlib.ExitStack() as stack:
        for name in dir(dc):
            part = next((p for prefix, p in KERNEL_PARTS.items() if name.startswith(prefix)
                         and name.endswith("_kernel")), None)
            if part is not None:
                stack.enter_context(mock.patch.object(
                    dc, name, _TimedKernel(getattr(dc, name), records[part])))
        yield records


def summary(timings: list, repeats: int, stat, synchronize: Callable[[], None]) -> float:
    """``stat`` of the ms of ``timings`` (from :func:`timed`, one per call of ``repeats``),
    once ``synchronize()`` has waited for the device."""
    if len(timings) != repeats:
        raise RuntimeError(f"expected one launch per call, got {len(timings)} in {repeats} "
                           "calls")
    synchronize()
    return stat([t() for t in timings])


def time_ours(x, w, dout, stride: int, method: str, repeats: int, stat) -> dict[str, float]:
    """ms per call of each part for minieffnet's ``method`` kernels (device arrays)."""
    def call():
        _, cache = dc.depthwise_conv2d_forward_device(x, w, stride, "symmetric", method)
        dc.depthwise_conv2d_backward_device(dout, cache)
    call()  # compiles the kernels for these types
    with timed_kernels() as records:
        for _ in range(repeats):
            call()
    return {part: summary(records[part], repeats, stat, cuda.synchronize) for part in PARTS}


def time_torch(x, w, dout, stride: int, repeats: int, stat) -> dict[str, float]:
    """ms per call of each part for PyTorch on the GPU, from the same NumPy arrays."""
    import torch
    import torch.nn.functional as F
    xt, wt, dt = (torch.from_numpy(a).cuda() for a in (x, w, dout))
    channels, k = w.shape[0], w.shape[-1]
    s, pad = [stride, stride], [(k - 1) // 2] * 2

    def gradient(mask):
        return lambda: torch.ops.aten.convolution_backward(
            dt, xt, wt, None, s, pad, [1, 1], False, [0, 0], channels, mask)
    calls = {"forward": lambda: F.conv2d(xt, wt, stride=stride, padding=pad[0],
                                         groups=channels),
             "input gradient": gradient([True, False, False]),
             "weight gradient": gradient([False, True, False])}
    new_event = lambda: torch.cuda.Event(enable_timing=True)  # noqa: E731
    result = {}
    for part, call in calls.items():
        call()  # lets cudnn.benchmark pick its algorithm
        result[part] = summary([timed(call, new_event) for _ in range(repeats)], repeats,
                               stat, torch.cuda.synchronize)
    return result


def device_bandwidth(megabytes: int, repeats: int) -> float:
    """GB/s of a device-to-device copy of ``megabytes`` MB (read + write), best of
    ``repeats``."""
    a = cuda.to_device(np.ones(megabytes * 2**20 // 4, np.float32))
    b = cuda.device_array_like(a)
    b.copy_to_device(a)
    timings = [timed(lambda: b.copy_to_device(a), cuda.event) for _ in range(repeats)]
    cuda.synchronize()
    return 2 * a.nbytes / (min(t() for t in timings) / 1e3) / 1e9


def torch_unavailable() -> str | None:
    """Why PyTorch's columns are empty, or None when it has a GPU."""
    torch = common.optional_torch()
    if torch is None:
        return "PyTorch is not installed"
    if not torch.cuda.is_available():
        return f"PyTorch {torch.__version__} sees no CUDA GPU"
    torch.backends.cudnn.benchmark = True
    return None


def shapes(args) -> dict[tuple, int]:
    """``(C, H, k, stride) -> layers``: ``--shape``s, else every depthwise shape of B0."""
    if args.shape:
        return {tuple(s): 1 for s in args.shape}
    return dict(common.op_shapes(make_config("b0", resolution=args.resolution),
                                 args.resolution)["depthwise"])


def measure(args, torch_missing: str | None) -> list[dict]:
    """One record per shape: its key, layer count, bytes and ms of each implementation."""
    rng = np.random.default_rng(0)
    stat = common.STATS[args.stat]
    results = []
    for (c, h, k, stride), layers in shapes(args).items():
        x = rng.standard_normal((args.batch, c, h, h), dtype=np.float32)
        w = rng.standard_normal((c, 1, k, k), dtype=np.float32)
        _, _, out_hw = depthwise_geometry("bench_cuda", x.shape, w.shape, stride, "symmetric")
        dout = rng.standard_normal((args.batch, c, *out_hw), dtype=np.float32)
        print(f"[bench_cuda] C={c} H={h} k={k} s={stride}", file=sys.stderr, flush=True)
        x_d, w_d, dout_d = (cuda.to_device(a) for a in (x, w, dout))
        ms = {m: time_ours(x_d, w_d, dout_d, stride, m, args.repeats, stat) for m in METHODS}
        if torch_missing is None:
            ms["PyTorch"] = time_torch(x, w, dout, stride, args.repeats, stat)
        results.append({"key": (c, h, k, stride), "layers": layers, "ms": ms,
                        "bytes": common.depthwise_bytes(x.nbytes, w.nbytes, dout.nbytes)})
    return results


IMPLS = (*METHODS, "PyTorch")


def _row(cells: tuple, moved: int, ms: dict[str, float | None], bandwidth: float) -> str:
    def num(v):
        return "–" if v is None else f"{v:.0f}" if v >= 100 else f"{v:.3g}"
    gbs = {i: None if ms.get(i) is None else moved / (ms[i] / 1e3) / 1e9 for i in IMPLS}
    tiled = gbs["tiled"]
    share = "–" if tiled is None else f"{100 * tiled / bandwidth:.0f} %"
    return "| " + " | ".join((*map(str, cells), *(num(ms.get(i)) for i in IMPLS),
                              *(num(gbs[i]) for i in IMPLS), share)) + " |"


def report(args, results: list[dict], bandwidth: float, torch_missing: str | None) -> str:
    """The Markdown report: header lines, then one row per shape and part, then totals."""
    name = "Numba's CUDA simulator" if SIMULATOR else cuda.get_current_device().name
    name = name.decode() if isinstance(name, bytes) else name
    versions = []
    for dist in ("numba", "numba-cuda", "torch"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} –")
    lines = [
        f"### `{' '.join(['python benchmarks/bench_cuda.py', *sys.argv[1:]])}` "
        f"({time.strftime('%Y-%m-%d %H:%M %Z')})",
        "",
        f"- Device: {name}" + (" (wall-clock times of Python threads, nothing about a "
                               "GPU)" if SIMULATOR else "") + ".",
        f"- Versions: {', '.join(versions)}.",
        "- PyTorch: " + (f"not run ({torch_missing})" if torch_missing else
                         "CUDA tensors, `torch.backends.cudnn.benchmark = True`") + ".",
        f"- Bandwidth: device-to-device copy of {args.copy_mb} MB, best of {args.repeats}: "
        f"{bandwidth:.1f} GB/s.",
        f"- Batch {args.batch}, float32; {args.stat} of {args.repeats} calls after a warm-up, "
        "each timed by CUDA events around it; GB/s: the least traffic (forward reads x, w, "
        "writes out; input gradient reads dout, writes dx; weight gradient reads dout, x, "
        "writes dw) over the time; % of copy: the tiled kernels.",
        "",
        "| C | H×W | k | s | layers | part | tiled ms | naive ms | PyTorch ms | tiled GB/s "
        "| naive GB/s | PyTorch GB/s | tiled % of copy |",
        "|" + "---|" * 13,
    ]
    totals = {p: (0, defaultdict(float)) for p in PARTS}
    for r in results:
        c, h, k, s = r["key"]
        for part in PARTS:
            ms = {impl: t[part] for impl, t in r["ms"].items()}
            lines.append(_row((c, f"{h}×{h}", k, s, r["layers"], part), r["bytes"][part], ms,
                              bandwidth))
            moved, total = totals[part]
            for impl, t in ms.items():
                total[impl] += r["layers"] * t
            totals[part] = (moved + r["layers"] * r["bytes"][part], total)
    layers = sum(r["layers"] for r in results)
    for part, (moved, total) in totals.items():
        lines.append(_row(("all", "", "", "", layers, part), moved, total, bandwidth))
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=224,
                    help="B0's input size, whose depthwise shapes are timed (default 224)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--shape", type=int, nargs=4, action="append",
                    metavar=("C", "H", "K", "STRIDE"),
                    help="time this shape instead of B0's (repeatable)")
    ap.add_argument("--repeats", type=int, default=20, help="timed calls per shape and part")
    ap.add_argument("--stat", choices=sorted(common.STATS), default="median")
    ap.add_argument("--copy-mb", type=int, default=512,
                    help="size of the device-to-device copy that measures the bandwidth")
    return ap.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    reason = unavailable_reason("cuda")
    if reason is not None:
        raise SystemExit(f"bench_cuda: {reason}")
    torch_missing = torch_unavailable()
    bandwidth = device_bandwidth(args.copy_mb, args.repeats)
    print(report(args, measure(args, torch_missing), bandwidth, torch_missing))


if __name__ == "__main__":
    main()
