"""Fill Numba's on-disk cache for the float32 kernels in parallel worker processes.

With an empty cache, a model's first training step compiles every parallel Numba kernel it
touches, one after the other in one process: 16 kernels, 13.5 s of the 13.9 s before the
first step ends on the project's 2-core machines (``benchmarks/RESULTS.md``, cold start-up;
11.2 s with this module). Compiling is single-threaded Python and LLVM work, so
:func:`ensure_compiled` splits the kernels over :data:`WORKLOADS`, one worker process each,
running at once; every worker writes what it compiled to Numba's cache (``cache=True``) and
the calling process then loads the kernels from there.

A worker compiles *by example*: it runs its ops' forward and backward passes on small float32
inputs from the op registry, at the image sizes that select each kernel (BatchNorm has
channel-major kernels and sample-major ones for maps below
:data:`~minieffnet.ops._batchnorm_numba.ROWS_BELOW_PIXELS` pixels), so it specialises exactly
the signatures a model's step dispatches. ``tests/test_precompile.py`` holds that a model's
training and evaluation steps specialise nothing beyond them.

:func:`ensure_compiled` does nothing when the cache already holds the kernels, under another
backend than "numba", or with ``MINIEFFNET_PRECOMPILE=0``; a worker that fails costs only
time: the caller then compiles what is missing itself, as without this module.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from numba.core.caching import FunctionCache
from numba.core.dispatcher import Dispatcher

from . import _batchnorm_numba, _depthwise_numba, activations, pooling, squeeze_excite
from .registry import OPS

# (registry spec name, shape, passes) per worker; passes "forward", "backward" (its forward
# then runs the NumPy reference: caches are backend-agnostic) or "both". Balanced by measured
# compile time (2-core machine, 2026-12-01): the three depthwise kernels take 3.3-4.3 s each,
# so the forward goes with BatchNorm's seven kernels (3.3 s together) and the small ones, the
# backward with the evaluation-mode fused depthwise + BN: 9.4 and 10.3 s when run at once.
WORKLOADS: tuple[tuple[tuple[str, tuple, str], ...], ...] = (
    (("depthwise 3x3 s1", (2, 3, 5, 3, 1), "forward"),
     ("batchnorm2d train + swish", (2, 3, 4), "both"),
     ("batchnorm2d train + swish", (2, 3, 12), "both"),
     ("batchnorm2d eval + swish", (2, 3, 4), "both"),
     ("batchnorm2d eval + swish", (2, 3, 12), "both"),
     ("swish", (2, 3, 4), "both"), ("global_avg_pool", (2, 3, 4), "both")),
    (("depthwise 3x3 s1", (2, 3, 5, 3, 1), "backward"),
     ("depthwise+BN eval+swish 3x3 s1", (2, 3, 5, 3, 1), "both"),
     ("squeeze_excite", (2, 4, 5, 2), "both"), ("sigmoid", (2, 3, 4), "both")),
)
_KERNEL_MODULES = (_batchnorm_numba, _depthwise_numba, activations, pooling, squeeze_excite)
_checked = False


def parallel_kernels() -> list[Dispatcher]:
    """The cached parallel Numba kernels of the ops (what a cold start spends its time on)."""
    return [v for m in _KERNEL_MODULES for v in vars(m).values()
            if isinstance(v, Dispatcher) and v.targetoptions.get("parallel")
            and isinstance(v._cache, FunctionCache)]


def _cached(kernel: Dispatcher) -> bool:
    """Whether Numba's cache holds an index for ``kernel`` (some signature compiled before)."""
    return Path(kernel._cache._cache_file._index_path).exists()


def run_workload(index: int) -> None:
    """Compile worker ``index``'s kernels: run each op of ``WORKLOADS[index]`` on float32
    inputs of its shape, the passes it names under the "numba" backend."""
    from .. import backend
    specs = {s.name: s for s in OPS}
    rng = np.random.default_rng(0)
    for name, shape, passes in WORKLOADS[index]:
        spec = specs[name]
        with backend.use_backend("numpy" if passes == "backward" else "numba"):
            out, cache = spec.forward_at(shape)(**spec.make_inputs(rng, shape, np.float32))
        if passes != "forward":
            with backend.use_backend("numba"):
                spec.backward(np.ones_like(out), cache)


def ensure_compiled() -> None:
    """Once per process, before the first float32 step under the "numba" backend: when any
    parallel kernel is missing from Numba's cache, compile them all in ``len(WORKLOADS)``
    worker processes at once and wait for them (module docstring)."""
    global _checked
    if _checked:
        return
    _checked = True
    from .. import backend  # at call time: the backend may change after import
    if (backend.get_backend() != "numba" or os.environ.get("MINIEFFNET_PRECOMPILE") == "0"
            or all(_cached(k) for k in parallel_kernels())):
        return
    package_root = str(Path(__file__).resolve().parents[2])  # import this very minieffnet
    env = {**os.environ, "MINIEFFNET_PRECOMPILE": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, (package_root,
                                                       os.environ.get("PYTHONPATH"))))}
    workers = [subprocess.Popen(
        [sys.executable, "-c", f"from minieffnet.ops.precompile import run_workload; "
                               f"run_workload({i})"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i in range(len(WORKLOADS))]
    for w in workers:
        w.wait()
