"""Keep the memory a training step frees for the next step, instead of returning it to the OS.

Every step allocates and frees the same large arrays (activations, gradients, scratch). By
default glibc's malloc serves large blocks from fresh ``mmap`` calls and trims the heap's
free top back to the OS, so each step faults in every page of them again, zeroed by the
kernel. In the project's 2-core VMs those faults made steps slow *and* erratic: one thread
faulting while the other waits for it at the end of a parallel kernel. Measured (one
training step on two threads, median of 12 steps, two alternations with
``MINIEFFNET_KEEP_MALLOC=1``, benchmarks/RESULTS.md): the study's base network at 16 px
101-114 -> 74-75 ms, B0 cifar preset 1208-1255 -> 944-956 ms; peak RSS within 2 %.

Two ``mallopt`` settings: ``M_MMAP_MAX = 0`` (large blocks come from the heap too, so they
can be reused) and ``M_TRIM_THRESHOLD`` at its maximum (freed heap memory stays with the
process). The cost: memory freed is kept until the process exits, as PyTorch's caching
allocator does; the peak does not grow.

Applied only where glibc's ``mallopt`` exists (not on macOS or musl). A user's choice wins:
an existing ``MALLOC_MMAP_MAX_`` or ``MALLOC_TRIM_THRESHOLD_`` is left alone, and
``MINIEFFNET_KEEP_MALLOC=1`` disables this module.
"""
from __future__ import annotations

import ctypes
import os

# From glibc's <malloc.h>.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
_INT_MAX = 2 ** 31 - 1  # mallopt takes a C int


def _mallopt():
    """glibc's ``mallopt``, or None where the C library has none."""
    try:
        f = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return None
    f.argtypes, f.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return f


def configure() -> dict[str, bool]:
    """Apply the settings described in the module docstring (called on import); returns
    which of them were applied, by environment variable name."""
    if os.environ.get("MINIEFFNET_KEEP_MALLOC") == "1":
        return {}
    mallopt = _mallopt()
    if mallopt is None:
        return {}
    return {name: bool(mallopt(param, value))
            for name, param, value in (("MALLOC_MMAP_MAX_", M_MMAP_MAX, 0),
                                       ("MALLOC_TRIM_THRESHOLD_", M_TRIM_THRESHOLD, _INT_MAX))
            if name not in os.environ}
