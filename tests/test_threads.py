"""minieffnet tames the thread pools on import (see minieffnet/_threads.py)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import minieffnet  # noqa: F401  (applies the configuration)
from minieffnet import _threads


def _policy_after_import(**env) -> str:
    """``OMP_WAIT_POLICY GOMP_SPINCOUNT`` in a new process after importing minieffnet."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MINIEFFNET_KEEP_THREADS")}
    code = ("import os, minieffnet; print(os.environ.get('OMP_WAIT_POLICY'), "
            "os.environ.get('GOMP_SPINCOUNT'))")
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env},
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_openmp_workers_spin_briefly_only_when_no_other_pool_needs_the_cores():
    # With NumPy's cblas the products run on Numba's threads, and its workers may spin a
    # little between kernels; without it they share the cores with a Python pool and sleep.
    on_numba_threads = _threads.openblas_symbol(_threads.GEMM_SYMBOLS["float32"]) is not None
    assert _policy_after_import() == ("ACTIVE 30000" if on_numba_threads else "PASSIVE None")
    assert _policy_after_import(OMP_WAIT_POLICY="PASSIVE") == "PASSIVE None"
    assert _policy_after_import(GOMP_SPINCOUNT="7").split()[1] == "7"
    assert _policy_after_import(MINIEFFNET_KEEP_THREADS="1") == "None None"


def test_openblas_thread_count_can_be_set():
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    if "openblas" not in str(blas.get("name", "")).lower():
        pytest.skip("NumPy is not linked against OpenBLAS here")
    assert _threads._loaded_openblas(), "OpenBLAS is loaded but was not found"
    assert _threads.set_blas_threads(1) is True
