"""Measurement primitives for ``benchmarks/run_all.py``: shapes, timers, ops, models, machine.

Nothing here prints a table; :mod:`run_all` decides what to measure and how to report it.

Import order matters. Numba reads ``NUMBA_NUM_THREADS`` when it is first imported and the
OpenMP runtime reads ``OMP_*`` when it is first loaded, so this module imports only the
standard library and NumPy at the top; everything that pulls in Numba or PyTorch is imported
inside the functions, after :func:`configure_threads` has set the environment.
"""
from __future__ import annotations

import functools
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
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:  # minieffnet is imported after configure_threads, not here
    from minieffnet.ops.registry import OpSpec

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
    settings (OpenMP workers that spin briefly, ``OMP_WAIT_POLICY=ACTIVE`` with
    ``GOMP_SPINCOUNT=30000``, or ``PASSIVE`` where NumPy's OpenBLAS has no ``cblas`` for the
    products; OpenBLAS at one thread; minieffnet/_threads.py), which is what a user of the
    library gets; a PyTorch-only process passes ``ours=False`` so that those settings do not
    reach PyTorch's OpenMP runtime. PyTorch is skipped when it is not installed.
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
OPS = ("depthwise", "batchnorm", "swish", "batchnorm_swish", "squeeze_excite", "pointwise",
       "stem", "linear", "global_avg_pool")


def _dense_conv(placed) -> tuple[str, tuple] | None:
    """A dense convolution's benchmarked op: the stem's k×k, or a 1×1 (expand, project,
    head)."""
    layer, h = placed.layer, placed.in_size[0]
    if placed.path == "stem":
        return "stem", (layer.in_channels, layer.out_channels, h, layer.kernel, layer.stride)
    if layer.kernel == 1:
        return "pointwise", (layer.in_channels, layer.out_channels, h)
    return None


# The benchmarked op doing the work of each layer kind that is timed on its own (stochastic
# depth and dropout are not): a placed layer (``minieffnet.scaling.PlacedLayer``) ->
# (op, its op_shapes key), or None.
_OWN_OP: dict[str, Callable[..., tuple[str, tuple] | None]] = {
    "conv_bn": _dense_conv,
    "depthwise_bn": lambda p: ("depthwise", (p.layer.in_channels, p.in_size[0],
                                             p.layer.kernel, p.layer.stride)),
    "squeeze_excite": lambda p: ("squeeze_excite", (p.layer.in_channels, p.in_size[0],
                                                    p.layer.squeeze)),
    "pool": lambda p: ("global_avg_pool", (p.layer.in_channels, p.in_size[0])),
    "linear": lambda p: ("linear", (p.layer.in_channels, p.layer.out_channels)),
}


def op_shapes(config, resolution: int) -> dict[str, Counter]:
    """Every shape each benchmarked op sees in one forward pass of ``config``'s network.

    Returns ``{op: Counter({key: occurrences})}`` for a square ``resolution`` input, keys
    without the batch dimension:

    * ``depthwise``: ``(C, H, k, stride)`` (H is the input size)
    * ``batchnorm``, ``swish``, ``batchnorm_swish``: ``(C, H)`` (the last: every BN followed
      by a swish, the pair the model runs as one fused op)
    * ``squeeze_excite``: ``(C, H, C_squeezed)``
    * ``pointwise``: ``(C_in, C_out, H)`` (1×1 stride-1 convs: expand, project, head)
    * ``stem``: ``(C_in, C_out, H, k, stride)`` (the dense k×k convolution)
    * ``global_avg_pool``: ``(C, H)``; ``linear``: ``(C_in, C_out)`` (the classifier)

    Reads the layers the model builds (``minieffnet.scaling.network_layers``): each kind's
    own op (:data:`_OWN_OP`), and the BatchNorm after every convolution kind
    (``LAYER_KINDS``' ``conv``), followed by a swish unless it is a block's projection.
    ``swish`` lists every activation after a BatchNorm, whether the model runs it as its own
    op or fused into the BatchNorm; the swish inside SE belongs to the SE op.
    """
    from minieffnet.scaling import network_layers

    shapes = {op: Counter() for op in OPS}
    for placed in network_layers(config, resolution):
        layer, h_out = placed.layer, placed.out_size[0]
        own = _OWN_OP[layer.kind](placed) if layer.kind in _OWN_OP else None
        if own is not None:
            op, key = own
            shapes[op][key] += 1
        if layer.kind_info.conv:
            shapes["batchnorm"][layer.out_channels, h_out] += 1
            if layer.activation == "swish":
                shapes["swish"][layer.out_channels, h_out] += 1
    shapes["batchnorm_swish"] = Counter(shapes["swish"])
    return shapes


# --- one registered op at one shape, in both libraries ----------------------------------------
# The ops, their inputs and what gets gradients come from minieffnet's op registry; only the
# PyTorch peers (``torch.nn.functional`` equivalents, differentiated by autograd) and the
# depthwise roofline live here, keyed by the registry's benchmark row.

def _torch_depthwise(x, w, stride):
    import torch.nn.functional as F
    k = w.shape[-1]
    return F.conv2d(x, w, stride=stride, padding=(k - 1) // 2, groups=w.shape[0])


def _torch_batchnorm(activation):
    def forward(x, gamma, beta, running_mean, running_var):
        import torch.nn.functional as F
        y = F.batch_norm(x, running_mean, running_var, gamma, beta, training=True,
                         momentum=0.1, eps=1e-5)
        return F.silu(y) if activation else y
    return forward


def _torch_depthwise_bn_eval(x, w, gamma, beta, running_mean, running_var, stride):
    import torch.nn.functional as F
    y = F.batch_norm(_torch_depthwise(x, w, stride), running_mean, running_var, gamma, beta,
                     training=False, eps=1e-5)
    return F.silu(y)


def _torch_conv(x, w, stride):
    import torch.nn.functional as F
    return F.conv2d(x, w, stride=stride, padding=(w.shape[-1] - 1) // 2)


def _torch_squeeze_excite(x, w1, b1, w2, b2):
    # torchvision's SqueezeExcitation: pool, 1×1 conv, SiLU, 1×1 conv, sigmoid, scale
    # (a 1×1 conv on a pooled map is a linear layer).
    import torch
    import torch.nn.functional as F
    g = torch.sigmoid(F.linear(F.silu(F.linear(x.mean((2, 3)), w1, b1)), w2, b2))
    return x * g[:, :, None, None]


def _torch_silu(x):
    import torch.nn.functional as F
    return F.silu(x)


def _torch_pointwise(x, w):
    import torch.nn.functional as F
    return F.conv2d(x, w)


def _torch_linear(x, w, b):
    import torch.nn.functional as F
    return F.linear(x, w, b)


def _torch_pool(x):
    return x.mean((2, 3))


TORCH_PEERS: dict[str, Callable] = {
    "swish": _torch_silu, "batchnorm": _torch_batchnorm(None),
    "batchnorm + swish (fused)": _torch_batchnorm("swish"), "depthwise conv": _torch_depthwise,
    "depthwise + BN + swish (eval, fused)": _torch_depthwise_bn_eval, "stem conv": _torch_conv,
    "pointwise conv": _torch_pointwise, "squeeze-excite": _torch_squeeze_excite,
    "linear": _torch_linear, "global avg pool": _torch_pool,
}


def depthwise_bytes(x: int, w: int, out: int) -> dict[str, int]:
    """The least traffic of depthwise conv, in bytes, from the sizes in bytes of x, w and out.

    ``forward`` reads x, w and writes out; ``input gradient`` reads dout and writes dx;
    ``weight gradient`` reads dout, x and writes dw; ``backward`` computes both gradients in
    one pass (reads dout and x once, writes dx and dw). Reading w in a backward is negligible
    and not counted.
    """
    return {"forward": x + w + out, "input gradient": out + x, "weight gradient": out + x + w,
            "backward": out + 2 * x + w}


def _depthwise_bytes(a: dict, out: np.ndarray) -> tuple[int, int]:
    moved = depthwise_bytes(a["x"].nbytes, a["w"].nbytes, out.nbytes)
    return moved["forward"], moved["backward"]


MIN_BYTES: dict[str, Callable] = {"depthwise conv": _depthwise_bytes}


@dataclass
class OpCase:
    """One registered op at one benchmark shape: float32 inputs, and how each library runs it.

    ``spec`` is the op's :class:`minieffnet.ops.registry.OpSpec`; ``forward(**arrays) ->
    (out, cache)`` is its forward with the shape's options bound, ``spec.backward`` its
    backward. ``torch_forward(**tensors) -> out`` is the PyTorch peer (None: no peer),
    differentiated by autograd with respect to ``spec.grad_names``. ``min_bytes(arrays, out)
    -> (forward, backward)`` is the least traffic the op must cause (only set for depthwise,
    where it is reported).
    """
    spec: OpSpec
    arrays: dict[str, np.ndarray]
    forward: Callable
    torch_forward: Callable | None
    min_bytes: Callable | None = None


def make_op_case(spec: OpSpec, key: tuple, batch: int, rng: np.random.Generator) -> OpCase:
    """The :class:`OpCase` of registry op ``spec`` at ``key`` (as :func:`op_shapes` lists it,
    without the batch) for ``batch`` samples."""
    shape = (batch, *key)
    peer = TORCH_PEERS.get(spec.bench.row)
    if peer is not None:
        peer = functools.partial(peer, **spec.options(shape))
    return OpCase(spec, spec.make_inputs(rng, shape, np.float32), spec.forward_at(shape), peer,
                  MIN_BYTES.get(spec.bench.row))


def gpu_unavailable() -> str | None:
    """Why the CUDA op rows cannot be timed here, or None on a real GPU (the simulator, which
    runs every GPU thread as a Python thread, times nothing worth reporting)."""
    from minieffnet.backend import unavailable_reason
    reason = unavailable_reason("cuda")
    if reason is None:
        from numba import config
        if config.ENABLE_CUDASIM:
            return "Numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1), no GPU"
    return reason


def time_ours(case: OpCase, repeats: int, stat,
              backend: str = "numba") -> tuple[float, float, int, int]:
    """minieffnet's forward and backward seconds for ``case`` under ``backend`` (``stat`` of
    ``repeats`` calls), and the forward and backward minimum bytes (0, 0 if the case does not
    define them)."""
    from minieffnet import use_backend
    forward = lambda: case.forward(**case.arrays)  # noqa: E731
    with use_backend(backend):
        out, cache = forward()
        dout = np.random.default_rng(1).standard_normal(out.shape, dtype=np.float32)
        fwd = stat(wall_times(forward, repeats))
        bwd = stat(wall_times(lambda: case.spec.backward(dout, cache), repeats))
    moved = case.min_bytes(case.arrays, out) if case.min_bytes else (0, 0)
    return fwd, bwd, moved[0], moved[1]


def time_torch(case: OpCase, repeats: int, stat) -> tuple[float, float]:
    """PyTorch's forward (autograd recording, as in training) and backward seconds."""
    import torch
    grad = case.spec.grad_names
    tensors = {k: torch.tensor(v, requires_grad=k in grad) for k, v in case.arrays.items()}
    leaves = [tensors[k] for k in grad]
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
# The peers of a model case, as the table's columns name them. "torch eager": torchvision's
# network as it comes (NCHW); "channels_last": the same with weights and input in NHWC memory
# format; "torch.compile": the eager network compiled by inductor (the first step compiles);
# "ONNX Runtime": the network exported by torch.onnx.export, run by onnxruntime's CPU provider.
TORCH_IMPLS = ("torch eager", "channels_last", "torch.compile")
ONNX_RUNTIME = "ONNX Runtime"


def model_config(spec: dict):
    """minieffnet's :class:`~minieffnet.scaling.EfficientNetConfig` of model case ``spec``
    (``preset``, ``width``, ``depth``, ``resolution``, ``classes``): B0's block table scaled."""
    from minieffnet.scaling import make_config
    return make_config("b0", spec["classes"], preset=spec["preset"], width=spec["width"],
                       depth=spec["depth"], resolution=spec["resolution"])


def torchvision_twin(preset: str, classes: int, width: float = 1.0, depth: float = 1.0):
    """torchvision's EfficientNet with B0's block table scaled by ``width`` and ``depth``
    (``_efficientnet_conf``, the rule ``efficientnet_b0`` … ``b7`` use) and minieffnet's
    ``preset`` applied; width = depth = 1 is ``efficientnet_b0``.

    The cifar preset (``minieffnet/scaling.py``) sets the stem's stride and the stride of Table
    1 stage 3 (the first stride-2 MBConv stage, torchvision's ``features[2]``; its depthwise
    conv is ``block[1][0]``) to 1; everything else is the same network, which is what lets
    ``minieffnet.interop`` map weights between the two by name. torchvision decides whether a
    block is residual when it builds it (stride 2 there: no); at stride 1 with as many
    channels out as in (small widths round both to 8, as the study's 0.25 does) minieffnet's
    block is residual, so the twin's is made so too.
    """
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf
    blocks, last_channel = _efficientnet_conf("efficientnet_b0", width_mult=width,
                                              depth_mult=depth)
    model = EfficientNet(blocks, dropout=0.2, last_channel=last_channel, num_classes=classes)
    if preset == "cifar":
        model.features[0][0].stride = (1, 1)
        first = model.features[2][0]
        first.block[1][0].stride = (1, 1)
        first.use_res_connect = first.block[0][0].in_channels == first.out_channels
    return model


def checked_twin(spec: dict):
    """:func:`torchvision_twin` of model case ``spec``, after checking that it has exactly as
    many parameters as minieffnet's network (``minieffnet.count_parameters``): a different
    network would make every comparison meaningless. Raises RuntimeError if not."""
    from minieffnet import count_parameters
    model = torchvision_twin(spec["preset"], spec["classes"], spec["width"], spec["depth"])
    theirs = sum(p.numel() for p in model.parameters())
    ours = count_parameters(model_config(spec))
    if theirs != ours:
        raise RuntimeError(f"the torchvision twin of {spec} has {theirs:,} parameters, "
                           f"minieffnet's network {ours:,}")
    return model


def export_onnx(model, spec: dict, path: str) -> None:
    """Export torch ``model`` in evaluation mode at model case ``spec``'s input shape to
    ``path`` (ONNX; weights may go to a ``.data`` file beside it) with ``torch.onnx.export``,
    input ``x``, output ``logits``."""
    import torch
    r = spec["resolution"]
    x = torch.zeros(spec["batch"], 3, r, r)
    # verbose=False: the exporter would report its progress on stdout, the Markdown report.
    torch.onnx.export(model.eval(), (x,), path, input_names=["x"], output_names=["logits"],
                      verbose=False)


def _minieffnet_step(spec: dict, x: np.ndarray, y: np.ndarray, train: bool) -> Callable:
    import minieffnet as me
    from minieffnet.optim import SGD
    model = me.EfficientNet(model_config(spec)).train(train)
    opt = SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        logits = model(x)
        if train:
            _, dlogits = me.ops.softmax_cross_entropy(logits, y)
            model.backward(dlogits)
            opt.step()
    return step


def _torch_step(spec: dict, x: np.ndarray, y: np.ndarray, train: bool) -> Callable:
    import torch
    impl = spec["impl"]
    model = torchvision_twin(spec["preset"], spec["classes"], spec["width"], spec["depth"])
    model.train(train)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    if impl == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        xt = xt.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    run = torch.compile(model) if impl == "torch.compile" else model

    def step():
        if train:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(run(xt), yt).backward()
            opt.step()
        else:
            with torch.no_grad():
                run(xt)
    return step


def _onnxruntime_step(spec: dict, x: np.ndarray, y: np.ndarray, train: bool) -> Callable:
    import onnxruntime as ort
    if train:
        raise ValueError("ONNX Runtime runs inference cases only")
    options = ort.SessionOptions()
    options.intra_op_num_threads = spec["threads"]
    session = ort.InferenceSession(spec["onnx"], options, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"x": x})


_STEPS = {"minieffnet": _minieffnet_step, **dict.fromkeys(TORCH_IMPLS, _torch_step),
          ONNX_RUNTIME: _onnxruntime_step}


def run_model_case(spec: dict) -> dict:
    """Time one model case in this process; returns images/s and the process's peak RSS.

    ``spec``: ``impl`` (``"minieffnet"``, one of :data:`TORCH_IMPLS` or :data:`ONNX_RUNTIME`,
    which also needs ``onnx``, the path :func:`export_onnx` wrote), ``mode`` ("train":
    forward, backward, SGD update; "infer": eval-mode forward), the network (``preset``,
    ``width``, ``depth``, ``resolution``, ``classes``), ``batch``, ``warmup`` and ``steps``
    (untimed and timed steps), ``threads``. Returns ``images_per_s`` and ``seconds`` as
    (best, median) of the timed steps, ``first_step_s`` (the first warm-up step, which
    compiles under torch.compile) and ``peak_rss_mb``. Run it in a fresh process (see
    :func:`model_case_in_subprocess`), so that the peak is this case's own.
    """
    impl = spec["impl"]
    configure_threads(spec["threads"], ours=impl == "minieffnet", pytorch=impl in TORCH_IMPLS)
    rng = np.random.default_rng(0)
    n, r = spec["batch"], spec["resolution"]
    x = rng.standard_normal((n, 3, r, r), dtype=np.float32)
    y = rng.integers(0, spec["classes"], n)
    step = _STEPS[impl](spec, x, y, spec["mode"] == "train")
    first = wall_time(step)
    for _ in range(spec["warmup"] - 1):
        step()
    times = [wall_time(step) for _ in range(spec["steps"])]
    seconds = (min(times), statistics.median(times))
    return {"images_per_s": [n / s for s in seconds], "seconds": list(seconds),
            "first_step_s": first, "peak_rss_mb": peak_rss_mb()}


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
