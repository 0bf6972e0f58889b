"""Test configuration.

The numba.cuda kernels run in Numba's CUDA simulator unless a real GPU is asked for with
``NUMBA_ENABLE_CUDASIM=0``. The variable must be set before numba is first imported, which is
why it lives here, at the top of the root conftest.
"""
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    """A fresh, seeded Generator per test: deterministic and independent of test order."""
    return np.random.default_rng(1234)
