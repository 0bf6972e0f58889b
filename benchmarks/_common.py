"""Measurement primitives for ``benchmarks/run_all.py``: shapes, timers, ops, models, machine.

Nothing here prints a table; :mod:`run_all` decides what to measure and how to report it.

Import order matters. Numba reads ``NUMBA_NUM_THREADS`` when it is first imported and the
OpenMP runtime reads ``OMP_*`` when it is first loaded, so this module imports only the
standard library and NumPy at the top; everything that pulls in Numba or PyTorch is imported
inside the functions, after :func:`configure_threads` has set the environment.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np

STATS: dict[str, Callable[[list[float]], float]] = {"median": statistics.median, "min": min}


# --- threads ----------------------------------------------------------------------------------
def thread_env(threads: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) with Numba's and OpenMP's thread counts set.

    Child processes get this environment, so every case runs with the same thread count.
    """
    env = dict(os.environ if base is None else base)
    env.update(NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    return env


def configure_threads(threads: int, ours: bool = True, pytorch: bool = True) -> None:
    """Use ``threads`` threads in Numba (with minieffnet's settings) and in PyTorch.

    Must run before Numba is first imported: ``NUMBA_NUM_THREADS`` caps the pool size and
    ``numba.set_num_threads`` cannot go above it. Importing minieffnet applies its own thread
    settings (``OMP_WAIT_POLICY=PASSIVE``, OpenBLAS at one thread; minieffnet/_threads.py),
    which is what a user of the library gets; a PyTorch-only process passes ``ours=False`` so
    that those settings do not reach PyTorch's OpenMP runtime. PyTorch is skipped when it is
    not installed.
    """
    os.environ.update(thread_env(threads))
    if ours:
        import numba

        import minieffnet  # noqa: F401  (applies minieffnet/_threads.py)
        numba.set_num_threads(threads)
    torch = optional_torch() if pytorch else None
    if torch is not None:
        torch.set_num_threads(threads)


def optional_torch():
    """The ``torch`` module, or None when PyTorch is not installed (its columns show "–")."""
    try:
        import torch
    except ImportError:
        return None
    return torch


# --- timing -----------------------------------------------------------------------------------
def wall_time(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn()`` takes."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def wall_times(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall times of ``repeats`` calls of ``fn()`` in seconds, after one untimed warm-up call
    (which compiles Numba kernels or loads them from the cache, and lets PyTorch allocate)."""
    fn()
    return [wall_time(fn) for _ in range(repeats)]


# --- B0's op shapes ---------------------------------------------------------------------------
OPS = ("depthwise", "batchnorm", "swish", "batchnorm_swish", "squeeze_excite", "pointwise")


def op_shapes(config, resolution: int) -> dict[str, Counter]:
    """Every shape each benchmarked op sees in one forward pass of ``config``'s network.

    Returns ``{op: Counter({key: occurrences})}`` for a square ``resolution`` input, keys
    without the batch dimension:

    * ``depthwise``: ``(C, H, k, stride)`` (H is the input size)
    * ``batchnorm``, ``swish``, ``batchnorm_swish``: ``(C, H)`` (the last: every BN followed
      by a swish, the pair the model runs as one fused op)
    * ``squeeze_excite``: ``(C, H, C_squeezed)``
    * ``pointwise``: ``(C_in, C_out, H)`` (1×1 stride-1 convs: expand, project, head)

    Walks ``config.blocks`` in the layer order of ``minieffnet.model`` (stem conv+BN+swish;
    per block expand 1×1+BN+swish, depthwise+BN+swish, SE, project 1×1+BN; head 1×1+BN+swish).
    ``swish`` lists every activation after a BatchNorm, whether the model runs it as its own op
    or fused into the BatchNorm; the swish inside SE belongs to the SE op.
    """
    from minieffnet.ops.padding import output_size

    shapes = {op: Counter() for op in OPS}
    h = output_size(resolution, 3, config.stem_stride, config.padding)
    shapes["batchnorm"][config.stem_channels, h] += 1
    shapes["swish"][config.stem_channels, h] += 1
    for b in config.blocks:
        e = b.expanded_channels
        if b.has_expansion:
            shapes["pointwise"][b.in_channels, e, h] += 1
            shapes["batchnorm"][e, h] += 1
            shapes["swish"][e, h] += 1
        shapes["depthwise"][e, h, b.kernel, b.stride] += 1
        h = output_size(h, b.kernel, b.stride, config.padding)
        shapes["batchnorm"][e, h] += 1
        shapes["swish"][e, h] += 1
        shapes["squeeze_excite"][e, h, b.se_channels] += 1
        shapes["pointwise"][e, b.out_channels, h] += 1
        shapes["batchnorm"][b.out_channels, h] += 1
    last = config.blocks[-1].out_channels
    shapes["pointwise"][last, config.head_channels, h] += 1
    shapes["batchnorm"][config.head_channels, h] += 1
    shapes["swish"][config.head_channels, h] += 1
    shapes["batchnorm_swish"] = Counter(shapes["swish"])
    return shapes


# --- one op at one shape in both libraries ----------------------------------------------------
@dataclass
class OpCase:
    """One op at one shape: float32 inputs, and how each library runs forward and backward.

    ``ours_forward(**arrays) -> (out, cache)`` and ``ours_backward(dout, cache)`` are
    minieffnet's public ops; ``torch_forward(**tensors) -> out`` is the
    ``torch.nn.functional`` equivalent, differentiated by autograd with respect to the
    tensors named in ``grad``. ``min_bytes(arrays, out) -> (forward, backward)`` is the
    least traffic the op must cause (only set for depthwise, where it is reported).
    """
    arrays: dict[str, np.ndarray]
    grad: tuple[str, ...]
    ours_forward: Callable
    ours_backward: Callable
    torch_forward: Callable
    min_bytes: Callable | None = None


def make_op_case(op: str, key: tuple, batch: int, rng: np.random.Generator) -> OpCase:
    """The :class:`OpCase` for ``op`` at shape ``key`` (as :func:`op_shapes` lists it)."""
    from minieffnet import ops

    def normal(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    if op == "depthwise":
        C, H, k, s = key

        def torch_dw(x, w):
            import torch.nn.functional as F
            return F.conv2d(x, w, stride=s, padding=(k - 1) // 2, groups=C)

        def dw_bytes(a, out):
            # The least a kernel can move: forward reads x, w and writes out; backward reads
            # dout, x and writes dx, dw (reading w again is negligible and not counted).
            x, w = a["x"], a["w"]
            return (x.nbytes + w.nbytes + out.nbytes,
                    out.nbytes + x.nbytes + x.nbytes + w.nbytes)

        return OpCase({"x": normal(batch, C, H, H), "w": normal(C, 1, k, k)}, ("x", "w"),
                      lambda x, w: ops.depthwise_conv2d_forward(x, w, s),
                      ops.depthwise_conv2d_backward, torch_dw, dw_bytes)
    if op in ("batchnorm", "batchnorm_swish"):
        C, H = key
        activation = "swish" if op == "batchnorm_swish" else None

        def torch_bn(x, gamma, beta, mean, var):
            import torch.nn.functional as F
            y = F.batch_norm(x, mean, var, gamma, beta, training=True, momentum=0.1, eps=1e-5)
            return F.silu(y) if activation else y

        arrays = {"x": normal(batch, C, H, H), "gamma": 1 + 0.1 * normal(C),
                  "beta": 0.1 * normal(C), "mean": np.zeros(C, np.float32),
                  "var": np.ones(C, np.float32)}
        return OpCase(arrays, ("x", "gamma", "beta"),
                      lambda x, gamma, beta, mean, var: ops.batchnorm2d_forward(
                          x, gamma, beta, mean, var, training=True, activation=activation),
                      ops.batchnorm2d_backward, torch_bn)
    if op == "swish":
        C, H = key

        def torch_swish(x):
            import torch.nn.functional as F
            return F.silu(x)

        return OpCase({"x": normal(batch, C, H, H)}, ("x",), ops.swish_forward,
                      ops.swish_backward, torch_swish)
    if op == "squeeze_excite":
        C, H, Cr = key

        def torch_se(x, w1, b1, w2, b2):
            # torchvision's SqueezeExcitation: pool, 1×1 conv, SiLU, 1×1 conv, sigmoid, scale
            # (a 1×1 conv on a pooled map is a linear layer).
            import torch
            import torch.nn.functional as F
            g = torch.sigmoid(F.linear(F.silu(F.linear(x.mean((2, 3)), w1, b1)), w2, b2))
            return x * g[:, :, None, None]

        arrays = {"x": normal(batch, C, H, H), "w1": 0.1 * normal(Cr, C), "b1": normal(Cr),
                  "w2": 0.1 * normal(C, Cr), "b2": normal(C)}
        return OpCase(arrays, tuple(arrays), ops.squeeze_excite_forward,
                      ops.squeeze_excite_backward, torch_se)
    if op == "pointwise":
        Cin, Cout, H = key

        def torch_pw(x, w):
            import torch.nn.functional as F
            return F.conv2d(x, w)

        # conv2d_forward is what the model's Conv2d layer calls; a 1×1 kernel takes its
        # pointwise (BLAS) path, so this times exactly what a training step runs.
        return OpCase({"x": normal(batch, Cin, H, H), "w": 0.1 * normal(Cout, Cin, 1, 1)},
                      ("x", "w"), ops.conv2d_forward, ops.conv2d_backward, torch_pw)
    raise ValueError(f"unknown op {op!r}; choose one of {OPS}")


def time_ours(case: OpCase, repeats: int, stat) -> tuple[float, float, int, int]:
    """minieffnet's forward and backward seconds for ``case`` (``stat`` of ``repeats`` calls),
    and the forward and backward minimum bytes (0, 0 if the case does not define them)."""
    forward = lambda: case.ours_forward(**case.arrays)  # noqa: E731
    out, cache = forward()
    dout = np.random.default_rng(1).standard_normal(out.shape, dtype=np.float32)
    fwd = stat(wall_times(forward, repeats))
    bwd = stat(wall_times(lambda: case.ours_backward(dout, cache), repeats))
    moved = case.min_bytes(case.arrays, out) if case.min_bytes else (0, 0)
    return fwd, bwd, moved[0], moved[1]


def time_torch(case: OpCase, repeats: int, stat) -> tuple[float, float]:
    """PyTorch's forward (autograd recording, as in training) and backward seconds."""
    import torch
    tensors = {k: torch.tensor(v, requires_grad=k in case.grad) for k, v in case.arrays.items()}
    leaves = [tensors[k] for k in case.grad]
    forward = lambda: case.torch_forward(**tensors)  # noqa: E731
    dout = torch.from_numpy(np.random.default_rng(1).standard_normal(
        tuple(forward().shape), dtype=np.float32))

    def backward() -> float:
        # A fresh graph each call, built outside the timed region; gradients reset so that
        # autograd allocates them as minieffnet does instead of accumulating into old ones.
        out = forward()
        for t in leaves:
            t.grad = None
        t0 = time.perf_counter()
        out.backward(dout)
        return time.perf_counter() - t0

    fwd = stat(wall_times(forward, repeats))
    backward()  # warm-up
    bwd = stat([backward() for _ in range(repeats)])
    return fwd, bwd


# --- whole models, one process per case -------------------------------------------------------
def torchvision_b0(preset: str, classes: int):
    """torchvision's ``efficientnet_b0`` with minieffnet's ``preset`` applied.

    The cifar preset (``minieffnet/scaling.py``) sets the stem's stride and the stride of Table
    1 stage 3 (the first stride-2 MBConv stage, torchvision's ``features[2]``; its depthwise
    conv is ``block[1][0]``) to 1; everything else is the same network, which is what lets
    ``minieffnet.interop`` map weights between the two by name.
    """
    import torchvision
    model = torchvision.models.efficientnet_b0(num_classes=classes)
    if preset == "cifar":
        model.features[0][0].stride = (1, 1)
        model.features[2][0].block[1][0].stride = (1, 1)
    return model


def run_model_case(spec: dict) -> dict:
    """Time one model case in this process; returns images/s and the process's peak RSS.

    ``spec``: ``impl`` ("minieffnet" or "torch"), ``mode`` ("train": forward, backward, SGD
    update; "infer": eval-mode forward), ``preset``, ``resolution``, ``batch``, ``classes``,
    ``warmup`` and ``steps`` (untimed and timed steps), ``stat``, ``threads``. Run it in a
    fresh process (see :func:`model_case_in_subprocess`), so that ``ru_maxrss`` is this case's
    peak memory.
    """
    is_torch = spec["impl"] == "torch"
    configure_threads(spec["threads"], ours=not is_torch, pytorch=is_torch)
    rng = np.random.default_rng(0)
    n, r, classes = spec["batch"], spec["resolution"], spec["classes"]
    x = rng.standard_normal((n, 3, r, r), dtype=np.float32)
    y = rng.integers(0, classes, n)
    train = spec["mode"] == "train"
    if is_torch:
        import torch
        model = torchvision_b0(spec["preset"], classes)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def step():
            if train:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(xt), yt).backward()
                opt.step()
            else:
                with torch.no_grad():
                    model(xt)
    else:
        import minieffnet as me
        from minieffnet.optim import SGD
        model = me.efficientnet("b0", classes, preset=spec["preset"], resolution=r)
        opt = SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            logits = model(x)
            if train:
                _, dlogits = me.ops.softmax_cross_entropy(logits, y)
                model.backward(dlogits)
                opt.step()
    model.train(train)
    for _ in range(spec["warmup"]):
        step()
    seconds = STATS[spec["stat"]]([wall_time(step) for _ in range(spec["steps"])])
    return {"images_per_s": n / seconds, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB.

    Linux's ``VmHWM`` (/proc/self/status) starts afresh at ``exec``; ``ru_maxrss`` does not:
    it keeps the high-water mark of the parent that forked the process, which would make every
    child of a large benchmark process report at least the parent's size.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux



def model_case_in_subprocess(script: str, spec: dict, env: dict[str, str]) -> dict:
    """Run ``python script --child SPEC`` and return its JSON result.

    ``{"error": text}`` if the child failed (e.g. torchvision is missing), so that one
    failing case leaves the rest of the table intact.
    """
    out = subprocess.run([sys.executable, script, "--child", json.dumps(spec)],
                         capture_output=True, text=True, env=env)
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


# A fresh interpreter that imports minieffnet, builds the cifar-preset B0 and runs one
# training step; it prints seconds since its parent launched it (argv[1], a time.time()) at
# each stage, so interpreter start-up counts too.
STARTUP_CODE = """\
import json, sys, time
launched, batch = float(sys.argv[1]), int(sys.argv[2])
import numpy as np
import minieffnet as me
from minieffnet.optim import SGD
t_import = time.time() - launched
model = me.efficientnet("b0", 10, preset="cifar")
opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
t_build = time.time() - launched
rng = np.random.default_rng(0)
r = model.config.resolution
x = rng.standard_normal((batch, 3, r, r), dtype=np.float32)
_, dlogits = me.ops.softmax_cross_entropy(model(x), rng.integers(0, 10, batch))
model.backward(dlogits)
opt.step()
print(json.dumps({"import": t_import, "build": t_build, "total": time.time() - launched}))
"""


def startup_seconds(batch: int, env: dict[str, str]) -> dict:
    """Seconds from launching ``python -c STARTUP_CODE`` to the end of its first training step
    (keys ``import``, ``build``, ``total``, each counted from the launch)."""
    launched = time.time()
    out = subprocess.run([sys.executable, "-c", STARTUP_CODE, repr(launched), str(batch)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the machine ------------------------------------------------------------------------------
def memory_bandwidth(n_floats: int, repeats: int) -> dict[str, float]:
    """This machine's memory bandwidth in GB/s from NumPy (one thread), best of ``repeats``.

    ``copy``: ``np.copyto(b, a)``, counted as read a + write b. ``triad``: ``a = b + s * c``,
    which NumPy runs as two passes (``a = s * c``, then ``a += b``), counted as the five array
    transfers those passes make. Arrays of ``n_floats`` float32 each; use far more than the
    last-level cache holds (the default run uses 128 MB arrays).
    """
    a = np.ones(n_floats, np.float32)
    b, c = a.copy(), a.copy()
    copy = min(wall_times(lambda: np.copyto(b, a), repeats))

    def triad():
        np.multiply(c, np.float32(3.0), out=a)
        np.add(a, b, out=a)
    tri = min(wall_times(triad, repeats))
    return {"copy": 2 * a.nbytes / copy / 1e9, "triad": 5 * a.nbytes / tri / 1e9}


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def blas_name() -> str:
    """NumPy's BLAS: from ``numpy.show_config`` (NumPy ≥ 1.26), else from the BLAS libraries
    mapped into this process (Linux), without needing threadpoolctl."""
    try:
        blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
        if blas.get("name"):
            return f"{blas['name']} {blas.get('version', '')}".strip()
    except (TypeError, AttributeError):  # older NumPy: show_config() has no mode
        pass
    try:
        with open("/proc/self/maps") as f:
            libs = {os.path.basename(line.split()[-1]) for line in f
                    if any(s in line.lower() for s in ("blas", "mkl", "blis"))}
        return ", ".join(sorted(libs)) or "unknown"
    except OSError:
        return "unknown"


def load_average() -> str:
    """The 1-minute load average, or "?" where the OS does not report one."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):
        return "?"
