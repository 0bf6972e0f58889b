"""The parallel cache fill of a cold start (minieffnet.ops.precompile): its example workloads
compile every signature a model step needs, and ensure_compiled fills an empty cache."""
import os
import subprocess
import sys

import pytest

from minieffnet.ops import precompile


def run_python(code: str, *args: str, **env) -> str:
    return subprocess.run([sys.executable, "-c", code, *args], env={**os.environ, **env},
                          capture_output=True, text=True, check=True).stdout


COVERAGE = """
import sys
import numpy as np
import minieffnet as me
from minieffnet.ops import precompile

def signatures():
    return {f"{k.__module__}.{k.__name__}": list(k.signatures)
            for k in precompile.parallel_kernels()}

mode = sys.argv[1]
for i in range(len(precompile.WORKLOADS[mode])):
    precompile.run_workload(mode, i)
compiled = signatures()
needed = {f"{k.__module__}.{k.__name__}" for k in precompile.parallel_kernels(mode)}
assert all(compiled[k] for k in needed), [k for k in needed if not compiled[k]]
model = me.efficientnet("b0", 10, preset="cifar", width=0.1, depth=0.1, resolution=16)
model.train(mode == "train")
x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
model.backward(np.ones_like(model(x)))
print({k: v for k, v in signatures().items() if v != compiled[k]})
"""


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_the_workloads_specialise_every_kernel_signature_of_a_model_step(mode):
    """In a new process (no kernel specialised yet): after the workloads of ``mode``, a
    model's step in that mode, forward and backward (BatchNorm on 16x16 down to 2x2 maps,
    both layouts; 3x3 and 5x5 depthwise, stride 1 and 2; in evaluation the fused depthwise +
    BN), adds no signature."""
    assert run_python(COVERAGE, mode, MINIEFFNET_PRECOMPILE="0").strip() == "{}"


def test_each_mode_leaves_out_only_the_kernels_of_the_other():
    every = set(precompile.parallel_kernels())
    train, evaluation = (set(precompile.parallel_kernels(m)) for m in ("train", "eval"))
    assert every - train == set(precompile.ONLY_IN["eval"])
    assert every - evaluation == set(precompile.ONLY_IN["train"])


CHECK = """
import sys
from minieffnet.ops import precompile as p

def cached():  # how many kernels of each set Numba's cache holds
    return [sum(map(p._cached, p.parallel_kernels(m))) for m in (None, "train", "eval")]

for mode in sys.argv[1:]:
    p.ensure_compiled(mode == "train")
    print(*cached())
if p._background is not None:
    p._background.wait()
    print(*cached())
"""


def kernel_counts(*modes: str, **env) -> list[list[int]]:
    """Per ensure_compiled call (then once more after the background worker, if one ran):
    how many of all kernels, of the training ones and of the evaluation ones are cached."""
    out = run_python(CHECK, *modes, **env)
    return [[int(n) for n in line.split()] for line in out.splitlines()]


def test_a_training_fill_compiles_the_evaluation_kernel_in_the_background(tmp_path):
    """The first training step waits for the training kernels only; the evaluation-only one
    is cached once the background worker ends."""
    every, train, evaluation = (len(precompile.parallel_kernels(m))
                                for m in (None, "train", "eval"))
    assert every >= 16
    assert kernel_counts("train", NUMBA_CACHE_DIR=str(tmp_path)) == [
        [train, train, evaluation - len(precompile.ONLY_IN["eval"])],
        [every, train, evaluation]]


def test_an_evaluation_fill_leaves_out_the_training_only_kernels(tmp_path):
    every, train, evaluation = (len(precompile.parallel_kernels(m))
                                for m in (None, "train", "eval"))
    assert kernel_counts("eval", NUMBA_CACHE_DIR=str(tmp_path)) == [
        [evaluation, train - len(precompile.ONLY_IN["train"]), evaluation]]
    assert every == evaluation + len(precompile.ONLY_IN["train"])


def test_ensure_compiled_can_be_switched_off(tmp_path):
    assert kernel_counts("train", "eval", NUMBA_CACHE_DIR=str(tmp_path),
                         MINIEFFNET_PRECOMPILE="0") == [[0, 0, 0], [0, 0, 0]]
