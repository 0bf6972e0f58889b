"""The parallel cache fill of a cold start (minieffnet.ops.precompile): its example workloads
compile every signature a model step needs, and ensure_compiled fills an empty cache."""
import os
import subprocess
import sys


def run_python(code: str, **env) -> str:
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                          capture_output=True, text=True, check=True).stdout


COVERAGE = """
import numpy as np
import minieffnet as me
from minieffnet.ops import precompile

def signatures():
    return {f"{k.__module__}.{k.__name__}": list(k.signatures)
            for k in precompile.parallel_kernels()}

for i in range(len(precompile.WORKLOADS)):
    precompile.run_workload(i)
compiled = signatures()
assert all(compiled.values()), [k for k, v in compiled.items() if not v]
model = me.efficientnet("b0", 10, preset="cifar", width=0.1, depth=0.1, resolution=16)
x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
model.backward(np.ones_like(model(x)))
model.eval()
model.backward(np.ones_like(model(x)))
print({k: v for k, v in signatures().items() if v != compiled[k]})
"""


def test_the_workloads_specialise_every_kernel_signature_of_a_model_step():
    """In a new process (no kernel specialised yet): after the workloads, a model's training
    and evaluation steps (BatchNorm on 16x16 down to 2x2 maps, both layouts; 3x3 and 5x5
    depthwise, stride 1 and 2; the eval-mode fused depthwise + BN) add no signature."""
    assert run_python(COVERAGE, MINIEFFNET_PRECOMPILE="0").strip() == "{}"


CHECK = ("from minieffnet.ops import precompile as p; p.ensure_compiled(); "
         "print(sum(map(p._cached, p.parallel_kernels())), len(p.parallel_kernels()))")


def test_ensure_compiled_fills_an_empty_cache_in_worker_processes(tmp_path):
    cached, kernels = run_python(CHECK, NUMBA_CACHE_DIR=str(tmp_path)).split()
    assert cached == kernels and int(kernels) >= 16


def test_ensure_compiled_can_be_switched_off(tmp_path):
    assert run_python(CHECK, NUMBA_CACHE_DIR=str(tmp_path), MINIEFFNET_PRECOMPILE="0"
                      ).split()[0] == "0"
