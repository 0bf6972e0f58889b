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


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Every test, and every process a test starts, caches decoded image folders under a
    folder of the test session's own, never in the user's ``~/.cache``: a test that undoes its
    own ``monkeypatch`` midway must not reach the real cache either."""
    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if saved is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = saved
