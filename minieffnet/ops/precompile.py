"""Fill Numba's on-disk cache for the float32 kernels in parallel worker processes.

With an empty cache, a model's first training step compiles every parallel Numba kernel it
touches, one after the other in one process: 16 kernels, 13.5 s of the 13.9 s before the
first step ends on the project's 2-core machines (``benchmarks/RESULTS.md``, cold start-up;
8.6-8.9 s with this module). Compiling is single-threaded Python and LLVM work, so
:func:`ensure_compiled` splits the kernels over :data:`WORKLOADS`, one worker process each,
running at once; every worker writes what it compiled to Numba's cache (``cache=True``) and
the calling process then loads the kernels from there.

A worker compiles *by example*: it runs its ops' forward and backward passes on small float32
inputs from the op registry, at the image sizes that select each kernel (BatchNorm has
channel-major kernels and sample-major ones for maps below
:data:`~minieffnet.ops._batchnorm_numba.ROWS_BELOW_PIXELS` pixels), so it specialises exactly
the signatures a model's step dispatches. ``tests/test_precompile.py`` holds that a model's
training and evaluation steps specialise nothing beyond them.

:func:`ensure_compiled` fills only what the step at hand needs. A training step runs every
kernel but one: the evaluation-mode depthwise forward with BatchNorm fused in (the slowest
to compile); an evaluation step, its backward included (Grad-CAM runs it), all but
BatchNorm's batch-statistics kernels (:data:`ONLY_IN`). So a training run's first step
waits only for the training kernels, and the fused one compiles in a background worker
while the first training steps run, ready by the first evaluation. (That worker takes a core
from those steps for a few seconds; a worker at low priority would starve instead, for as
long as the steps keep both cores busy.)

It does nothing when the cache already holds the kernels, under another backend than
"numba", or with ``MINIEFFNET_PRECOMPILE=0``; a worker that fails costs only time: the caller
then compiles what is missing itself, as without this module.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from numba.core.caching import FunctionCache
from numba.core.dispatcher import Dispatcher

from . import (_batchnorm_numba, _depthwise_numba, _gemm_numba, activations, conv_bn, pooling,
               squeeze_excite)
from .registry import OPS

# (registry spec name, shape, passes) per worker, per mode; passes "forward", "backward" (its
# forward then runs the NumPy reference: caches are backend-agnostic) or "both". Balanced by
# measured compile time (2-core machine, 2026-12-01): the depthwise forward, backward and
# BN-fused evaluation kernels take 3.3, 3.3 and 4.3 s, BatchNorm's seven kernels 3.3 s
# together (its two layouts about half each), squeeze-excite 1.2 s, the rest less; the two
# training workers take 7.9 and 7.6 s at once. The evaluation workers' first one holds the
# fused kernel: it is the one a training fill starts in the background.
# The convolutions' products run one kernel of one signature (_gemm_numba._gemms_kernel),
# whatever the layouts; conv_bn's fused evaluation kernel takes arrays, so the evaluation
# workload runs it on a pointwise conv's input and on the stem's strided im2col columns.
_CONV = ("pointwise conv2d", (2, 3, 5, 4), "both")
WORKLOADS: dict[str, tuple[tuple[tuple[str, tuple, str], ...], ...]] = {
    "train": (
        (("depthwise 3x3 s1", (2, 3, 5, 3, 1), "forward"),
         ("batchnorm2d train + swish", (2, 3, 12), "both"),
         ("squeeze_excite", (2, 4, 5, 2), "both"), ("sigmoid", (2, 3, 4), "both")),
        (("depthwise 3x3 s1", (2, 3, 5, 3, 1), "backward"),
         ("batchnorm2d train + swish", (2, 3, 4), "both"),
         ("swish", (2, 3, 4), "both"), ("global_avg_pool", (2, 3, 4), "both"), _CONV)),
    "eval": (
        (("depthwise+BN eval+swish 3x3 s1", (2, 3, 5, 3, 1), "forward"),
         ("conv+BN eval+swish 1x1", (2, 4, 6, 5, 1, 1), "forward"),
         ("conv+BN eval 3x3 s2 same", (2, 3, 4, 5, 3, 2), "forward"),
         ("batchnorm2d eval + swish", (2, 3, 12), "both"),
         ("swish", (2, 3, 4), "both"), ("global_avg_pool", (2, 3, 4), "both")),
        (("depthwise 3x3 s1", (2, 3, 5, 3, 1), "both"),
         ("batchnorm2d eval + swish", (2, 3, 4), "both"),
         ("squeeze_excite", (2, 4, 5, 2), "both"), ("sigmoid", (2, 3, 4), "both"), _CONV)),
}
# The kernels only one mode's steps run, so that the other need not wait for them: batch
# statistics in training; in evaluation the BN-fused depthwise forward and conv product.
ONLY_IN: dict[str, tuple[Dispatcher, ...]] = {
    "train": (_batchnorm_numba._stats_kernel, _batchnorm_numba._stats_rows_kernel),
    "eval": (_depthwise_numba._forward_bn_eval_kernel, conv_bn._products_bias_act_kernel)}
_KERNEL_MODULES = (_batchnorm_numba, _depthwise_numba, _gemm_numba, activations, conv_bn,
                   pooling, squeeze_excite)
_checked: set[str] = set()  # the modes this process has checked
_background: subprocess.Popen | None = None  # the evaluation-only kernel, compiling


def parallel_kernels(mode: str | None = None) -> list[Dispatcher]:
    """The cached parallel Numba kernels of the ops (what a cold start spends its time on):
    all of them, or those a step in ``mode`` ("train" or "eval") may run."""
    other_modes_only = [k for m, only in ONLY_IN.items() if mode not in (None, m) for k in only]
    return [v for m in _KERNEL_MODULES for v in vars(m).values()
            if isinstance(v, Dispatcher) and v.targetoptions.get("parallel")
            and isinstance(v._cache, FunctionCache) and v not in other_modes_only]


def _cached(kernel: Dispatcher) -> bool:
    """Whether Numba's cache holds an index for ``kernel`` (some signature compiled before)."""
    return Path(kernel._cache._cache_file._index_path).exists()


def run_workload(mode: str, index: int) -> None:
    """Compile worker ``index``'s kernels for ``mode``: run each op of
    ``WORKLOADS[mode][index]`` on float32 inputs of its shape, the passes it names under the
    "numba" backend."""
    from .. import backend
    specs = {s.name: s for s in OPS}
    rng = np.random.default_rng(0)
    for name, shape, passes in WORKLOADS[mode][index]:
        spec = specs[name]
        with backend.use_backend("numpy" if passes == "backward" else "numba"):
            out, cache = spec.forward_at(shape)(**spec.make_inputs(rng, shape, np.float32))
        if passes != "forward":
            with backend.use_backend("numba"):
                spec.backward(np.ones_like(out), cache)


def _start_worker(mode: str, index: int) -> subprocess.Popen:
    """A Python process that runs ``run_workload(mode, index)``, with this very minieffnet
    importable."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "MINIEFFNET_PRECOMPILE": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, (package_root,
                                                       os.environ.get("PYTHONPATH"))))}
    return subprocess.Popen(
        [sys.executable, "-c", f"from minieffnet.ops.precompile import run_workload; "
                               f"run_workload({mode!r}, {index})"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ensure_compiled(training: bool) -> None:
    """Once per process and mode, before the first float32 step under the "numba" backend:
    when a parallel kernel that a ``training`` (or evaluation) step may run is missing from
    Numba's cache, compile the mode's kernels in ``len(WORKLOADS[mode])`` worker processes
    at once and wait for them. After a training fill, the evaluation-only kernel compiles in
    one more worker in the background (``WORKLOADS["eval"][0]``, the one that holds it),
    which the first evaluation step waits for (module docstring)."""
    global _background
    mode = "train" if training else "eval"
    if mode in _checked:
        return
    _checked.add(mode)
    if _background is not None:
        _background.wait()
    from .. import backend  # at call time: the backend may change after import
    if (backend.get_backend() != "numba" or os.environ.get("MINIEFFNET_PRECOMPILE") == "0"
            or all(_cached(k) for k in parallel_kernels(mode))):
        return
    for w in [_start_worker(mode, i) for i in range(len(WORKLOADS[mode]))]:
        w.wait()
    if training and not all(map(_cached, ONLY_IN["eval"])):
        _background = _start_worker("eval", 0)
