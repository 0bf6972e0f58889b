"""minieffnet/_malloc.py: freed arrays stay with the process, so the next step reuses them."""
import os
import subprocess
import sys

import pytest

from minieffnet import _malloc

pytestmark = pytest.mark.skipif(_malloc._mallopt() is None, reason="no glibc mallopt")

# Where does a 64 MB array come from, and does its memory stay after it is freed? Memory from
# the heap lies below the heap's end (sbrk(0)), which stays above it unless the heap is
# trimmed; glibc serves such a block from its own mmap by default (far above the heap) and
# unmaps it on free.
PROBE = """
import ctypes, numpy as np, minieffnet
libc = ctypes.CDLL(None)
libc.sbrk.restype, libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_long]
a = np.ones(16 * 2**20, np.float32)
end = a.ctypes.data + a.nbytes
on_heap = end <= libc.sbrk(0)
del a
print(on_heap, libc.sbrk(0) >= end)
"""


def probe(**env) -> str:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("MALLOC_", "MINIEFFNET_KEEP_MALLOC"))}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**environ, **env},
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_large_arrays_come_from_the_heap_and_stay_after_they_are_freed():
    assert probe() == "True True"


def test_the_settings_can_be_switched_off():
    assert probe(MINIEFFNET_KEEP_MALLOC="1") == "False False"


def test_a_users_malloc_setting_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    monkeypatch.delenv("MALLOC_MMAP_MAX_", raising=False)
    monkeypatch.delenv("MINIEFFNET_KEEP_MALLOC", raising=False)
    assert _malloc.configure() == {"MALLOC_MMAP_MAX_": True}
    assert probe(MALLOC_TRIM_THRESHOLD_="0") == "True False"  # from the heap, then trimmed
