"""Time depthwise convolution on EfficientNet-B0's 16 depthwise layers: NumPy, Numba, PyTorch.

    python benchmarks/bench_depthwise.py                 # batch 64 at 64x64, 2 threads
    python benchmarks/bench_depthwise.py --quick         # smoke run: batch 8, 2 repeats

For every MBConv block of B0 (paper Table 1) the depthwise layer sees C = in_ch * expand
channels at the stage's stride in the stage's first block, and out_ch * expand channels at
stride 1 in the others; the stem (stride 2) halves the input resolution first. Each cell is
the median of ``--repeats`` timed calls after one warm-up call (which also compiles Numba).
(``--stat min`` takes the fastest call instead: on a machine shared with other jobs, noise
only ever adds time, so the minimum is the steadier estimate.)
Forward and backward are timed separately; PyTorch's backward is autograd's backward of
``F.conv2d(..., groups=C)``. GB/s counts the bytes a kernel must move at least (read its
inputs, write its outputs once) divided by the Numba time: depthwise convolution does a
few multiply-adds per byte, so memory bandwidth is its roofline.

Prints a Markdown table (paste it into benchmarks/RESULTS.md).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numba
import numpy as np

from minieffnet import use_backend
from minieffnet.ops import depthwise
from minieffnet.ops.depthwise import depthwise_conv2d_backward, depthwise_conv2d_forward

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the PyTorch columns are optional
    torch = None

# B0 stages: (expand, kernel, stride, in_ch, out_ch, repeats) -- the paper's Table 1.
B0_STAGES = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2),
             (6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4),
             (6, 3, 1, 192, 320, 1)]


def b0_depthwise_layers(resolution: int):
    """``[(C, H, k, stride), ...]`` for B0's 16 depthwise layers at a square input."""
    size = (resolution + 1) // 2  # after the stride-2 stem
    layers = []
    for expand, k, stride, c_in, c_out, repeats in B0_STAGES:
        for i in range(repeats):
            s = stride if i == 0 else 1
            layers.append(((c_in if i == 0 else c_out) * expand, size, k, s))
            size = (size + s - 1) // s
    return layers


STATS = {"median": statistics.median, "min": min}


def wall_times(fn, repeats: int) -> list[float]:
    """Wall times of ``repeats`` calls of ``fn()`` in seconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def time_ours(backend: str, x, w, stride, dout, repeats, stat):
    with use_backend(backend):
        _, cache = depthwise_conv2d_forward(x, w, stride)
        fwd = stat(wall_times(lambda: depthwise_conv2d_forward(x, w, stride), repeats))
        bwd = stat(wall_times(lambda: depthwise_conv2d_backward(dout, cache), repeats))
    return fwd, bwd


def time_torch(x, w, stride, dout, repeats, stat):
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    gt = torch.tensor(dout)
    k = w.shape[2]

    def forward():
        return F.conv2d(xt, wt, stride=stride, padding=(k - 1) // 2, groups=x.shape[1])

    def backward():  # a fresh graph each call, built outside the timed region
        out = forward()
        t = time.perf_counter()
        out.backward(gt)
        return time.perf_counter() - t

    fwd = stat(wall_times(forward, repeats))
    backward()
    bwd = stat([backward() for _ in range(repeats)])
    return fwd, bwd


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--resolution", type=int, default=64, help="input image size (square)")
    ap.add_argument("--repeats", type=int, default=7, help="timed calls per cell")
    ap.add_argument("--stat", choices=sorted(STATS), default="median",
                    help="how to summarise a cell's calls")
    ap.add_argument("--threads", type=int, default=2, help="threads for Numba and PyTorch")
    ap.add_argument("--no-numpy", action="store_true", help="skip the (slow) NumPy reference")
    ap.add_argument("--quick", action="store_true", help="smoke run: batch 8, 2 repeats")
    ap.add_argument("--lanes", type=int, default=0,
                    help="force the Numba kernels' channels per tile (default: their choice)")
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.repeats = 8, 2
    stat = STATS[args.stat]
    if args.lanes:  # how the tile widths in depthwise._lanes were chosen
        depthwise._lanes = lambda C, H, W: args.lanes

    numba.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    backends = (["numpy"] if not args.no_numpy else []) + ["numba"]
    columns = backends + (["torch"] if torch is not None else [])

    print(f"EfficientNet-B0 depthwise layers, batch {args.batch}, {args.resolution}x"
          f"{args.resolution} input, float32, {args.threads} threads, {args.stat} of "
          f"{args.repeats} calls" + (f", Numba lanes forced to {args.lanes}" if args.lanes else ""))
    print(f"CPU: {cpu_name()} ({os.cpu_count()} logical CPUs); numpy {np.__version__}, "
          f"numba {numba.__version__}" + (f", torch {torch.__version__}" if torch else ""))
    print()
    head = "| # | C | H×W | k | s | " + " | ".join(
        f"{c} fwd ms | {c} bwd ms" for c in columns) + " | numba GB/s fwd / bwd |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))

    rng = np.random.default_rng(0)
    totals = {c: [0.0, 0.0] for c in columns}
    bytes_total = [0, 0]
    for i, (C, H, k, s) in enumerate(b0_depthwise_layers(args.resolution), 1):
        x = rng.standard_normal((args.batch, C, H, H), dtype=np.float32)
        w = rng.standard_normal((C, 1, k, k), dtype=np.float32)
        out, _ = depthwise_conv2d_forward(x, w, s)
        dout = rng.standard_normal(out.shape, dtype=np.float32)
        times = {b: time_ours(b, x, w, s, dout, args.repeats, stat) for b in backends}
        if torch is not None:
            times["torch"] = time_torch(x, w, s, dout, args.repeats, stat)
        # Least traffic: forward reads x, w and writes out; backward reads dout, x, w and
        # writes dx, dw.
        moved = (x.nbytes + w.nbytes + out.nbytes,
                 dout.nbytes + 2 * x.nbytes + 2 * w.nbytes)
        for c in columns:
            totals[c][0] += times[c][0]
            totals[c][1] += times[c][1]
        bytes_total[0] += moved[0]
        bytes_total[1] += moved[1]
        cells = " | ".join(f"{times[c][0] * 1e3:.2f} | {times[c][1] * 1e3:.2f}" for c in columns)
        gbs = [moved[j] / times["numba"][j] / 1e9 for j in (0, 1)]
        print(f"| {i} | {C} | {H}×{H} | {k} | {s} | {cells} | {gbs[0]:.1f} / {gbs[1]:.1f} |")

    cells = " | ".join(f"**{totals[c][0] * 1e3:.1f}** | **{totals[c][1] * 1e3:.1f}**"
                       for c in columns)
    gbs = [bytes_total[j] / totals["numba"][j] / 1e9 for j in (0, 1)]
    print(f"| all | | | | | {cells} | {gbs[0]:.1f} / {gbs[1]:.1f} |")
    print()
    for c in columns:
        fwd, bwd = totals[c]
        print(f"{c:>6}: forward {fwd * 1e3:8.1f} ms   backward {bwd * 1e3:8.1f} ms   "
              f"total {(fwd + bwd) * 1e3:8.1f} ms")
    if torch is not None:
        nf, nb = totals["numba"]
        tf, tb = totals["torch"]
        print(f"numba / torch time: forward {nf / tf:.2f}x, backward {nb / tb:.2f}x, "
              f"forward+backward {(nf + nb) / (tf + tb):.2f}x  (below 1 = numba faster)")


if __name__ == "__main__":
    main()
