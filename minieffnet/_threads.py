"""Keep Numba's and OpenBLAS's thread pools from fighting over the cores.

A training step alternates between Numba kernels (parallel over channels) and BLAS products
(pointwise convolutions). Both libraries keep worker threads that *spin* after each call,
waiting for more work; on a 2-core machine the spinning pool of one starves the other, and
every hand-over waits for a scheduler time slice. Measured on the project's 2-core machines
(B0, 64x64, batch 64, another job running): 12.9 s per training step with default settings,
1.07 s with the two settings below. See benchmarks/RESULTS.md.

* Numba's OpenMP workers spin only briefly between kernels: ``OMP_WAIT_POLICY=ACTIVE`` with
  ``GOMP_SPINCOUNT=30000`` (tens of microseconds, then they sleep) where the convolutions'
  products run on Numba's own threads (:mod:`minieffnet.ops._gemm_numba`, which needs the
  ``cblas`` of NumPy's OpenBLAS), else ``OMP_WAIT_POLICY=PASSIVE`` (they sleep at once). Waking
  a sleeping worker costs ~65 µs in these VMs, a few hundred times per step of a small
  network; a spinning worker is only harmful when another pool (the Python threads the
  products otherwise run on) needs the core. Measured on those machines
  (benchmarks/RESULTS.md): the study's base network trains 1.2-1.3x faster at 16 px with both
  changes. These must be in the environment before the OpenMP runtime loads, which Numba
  does lazily at the first parallel kernel, so setting them when minieffnet is imported is
  early enough.
* OpenBLAS limited to one thread through its own ``set_num_threads`` (the environment
  variable would come too late once NumPy is imported). Parallelism comes from Numba; the
  BLAS products are many medium-sized ones, which one thread runs efficiently.

All respect a user's explicit choice: an existing ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` or
``OPENBLAS_NUM_THREADS`` is left alone, and ``MINIEFFNET_KEEP_THREADS=1`` disables this module.
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

_SET_THREADS_SYMBOLS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                        "openblas_set_num_threads64_", "openblas_set_num_threads")


def _loaded_openblas() -> list[str]:
    """Paths of OpenBLAS libraries mapped into this process (Linux), else NumPy's bundled ones."""
    maps = Path("/proc/self/maps")
    if maps.exists():
        paths = {line.split()[-1] for line in maps.read_text().splitlines()
                 if "openblas" in line.lower() and line.split()[-1].startswith("/")}
        if paths:
            return sorted(paths)
    import numpy
    root = Path(numpy.__file__).parent
    return sorted(str(p) for d in (root / ".libs", root.parent / "numpy.libs") if d.is_dir()
                  for p in d.glob("*openblas*"))


def openblas_symbol(name: str) -> int | None:
    """The address of ``name`` in the OpenBLAS this process loaded, or None."""
    for path in _loaded_openblas():
        try:
            fn = getattr(ctypes.CDLL(path), name, None)
        except OSError:
            continue
        if fn is not None:
            return ctypes.cast(fn, ctypes.c_void_p).value
    return None


# The ILP64 cblas gemm of NumPy's bundled OpenBLAS (minieffnet.ops._gemm_numba calls it).
GEMM_SYMBOLS = {"float32": "scipy_cblas_sgemm64_", "float64": "scipy_cblas_dgemm64_"}


def set_blas_threads(n: int) -> bool:
    """Set OpenBLAS's thread count at run time; returns False if no OpenBLAS was found."""
    for path in _loaded_openblas():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SET_THREADS_SYMBOLS:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn(ctypes.c_int(n))
                return True
    return False


def configure() -> None:
    """Apply the defaults described in the module docstring (called on import)."""
    if os.environ.get("MINIEFFNET_KEEP_THREADS") == "1":
        return
    import numpy  # noqa: F401  (loads OpenBLAS, so it can be found)
    if "OPENBLAS_NUM_THREADS" not in os.environ:
        set_blas_threads(1)
    if "OMP_WAIT_POLICY" not in os.environ:
        if openblas_symbol(GEMM_SYMBOLS["float32"]) is not None:
            os.environ["OMP_WAIT_POLICY"] = "ACTIVE"
            os.environ.setdefault("GOMP_SPINCOUNT", "30000")
        else:
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
