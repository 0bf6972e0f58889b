"""minieffnet tames the thread pools on import (see minieffnet/_threads.py)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import minieffnet  # noqa: F401  (applies the configuration)
from minieffnet import _threads


def _policy_after_import(**env) -> str:
    base = {k: v for k, v in os.environ.items()
            if k not in ("OMP_WAIT_POLICY", "MINIEFFNET_KEEP_THREADS")}
    code = "import os, minieffnet; print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env},
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_openmp_workers_wait_passively_unless_the_user_chose():
    assert _policy_after_import() == "PASSIVE"
    assert _policy_after_import(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
    assert _policy_after_import(MINIEFFNET_KEEP_THREADS="1") == "None"


def test_openblas_thread_count_can_be_set():
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    if "openblas" not in str(blas.get("name", "")).lower():
        pytest.skip("NumPy is not linked against OpenBLAS here")
    assert _threads._loaded_openblas(), "OpenBLAS is loaded but was not found"
    assert _threads.set_blas_threads(1) is True
