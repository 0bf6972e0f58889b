"""``minieffnet check-ops``: gradient-check every registered op in float64 and print one table.

One row per op (:data:`minieffnet.ops.registry.OPS`) and input, one column per backend:
:func:`minieffnet.gradcheck.check_gradients` on the op's small check shape under that backend,
"–" where the op does not run on it. A learner sees at a glance that every hand-written
backward agrees with finite differences (relative error around 1e-9). Without a GPU the
"cuda" column runs in a child process under Numba's CUDA simulator, which has to be switched
on before Numba is first imported.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np

from .backend import BACKENDS, unavailable_reason, use_backend
from .gradcheck import check_gradients
from .ops.registry import OPS, OpSpec, unregistered_ops

TOLERANCE = 1e-6

Row = tuple[str, str, dict[str, float]]  # (op, input, {backend: relative error})


def check_op(spec: OpSpec, backend_name: str, seed: int = 0) -> dict[str, float]:
    """``{input: relative error}`` of ``spec``'s backward under ``backend_name``, float64.

    Under "cuda" the finite differences (two forwards per input element) differentiate the
    Numba forward, which the agreement tests hold equal to the CUDA one: in the simulator
    each CUDA forward costs a tenth of a second. The backward under test runs on CUDA.
    """
    shape = spec.shape_for(backend_name)
    inputs = spec.make_inputs(np.random.default_rng(seed), shape, np.float64)
    forward = spec.forward_at(shape)
    numeric = _under("numba", forward) if backend_name == "cuda" else None
    with use_backend(backend_name):
        results = check_gradients(forward, spec.backward, inputs, spec.grad_names, seed,
                                  numeric_forward=numeric)
    return {name: r.error for name, r in results.items()}


def _under(backend_name: str, fn):
    """``fn`` run under ``backend_name`` whatever the active backend."""
    def run(**inputs):
        with use_backend(backend_name):
            return fn(**inputs)
    return run


def run_op_checks(seed: int = 0, backends=BACKENDS, ops=OPS) -> list[Row]:
    """One row per op and input, with the errors under each of ``backends`` it lists."""
    rows = []
    for spec in ops:
        errors: dict[str, dict[str, float]] = {}
        for b in (b for b in backends if b in spec.backends):
            for name, error in check_op(spec, b, seed).items():
                errors.setdefault(name, {})[b] = error
        rows += [(spec.name, name, errs) for name, errs in errors.items()]
    return rows


def _cuda_in_simulator(seed: int) -> list[Row]:
    """:func:`run_op_checks` of the "cuda" column in a child process with the simulator on."""
    code = ("import json, sys; from minieffnet.opcheck import run_op_checks; "
            "print(json.dumps(run_op_checks(int(sys.argv[1]), ('cuda',))))")
    out = subprocess.run([sys.executable, "-c", code, str(seed)], check=True, text=True,
                         capture_output=True, env={**os.environ, "NUMBA_ENABLE_CUDASIM": "1"})
    return [tuple(r) for r in json.loads(out.stdout.strip().splitlines()[-1])]


def all_op_checks(seed: int = 0) -> tuple[list[Row], str]:
    """:func:`run_op_checks` under every backend, and a line saying where "cuda" ran: on the
    GPU, in Numba's CUDA simulator (in a child process when this one has neither), or not at
    all without numba-cuda."""
    reason = unavailable_reason("cuda")
    if reason is None:
        from numba import config
        return run_op_checks(seed), ("cuda: Numba's CUDA simulator" if config.ENABLE_CUDASIM
                                     else "cuda: on the GPU")
    rows = run_op_checks(seed, [b for b in BACKENDS if b != "cuda"])
    if importlib.util.find_spec("numba_cuda") is None:
        return rows, f"cuda: not run: {reason}"
    simulated = {(op, name): errs for op, name, errs in _cuda_in_simulator(seed)}
    rows = [(op, name, {**errs, **simulated.get((op, name), {})}) for op, name, errs in rows]
    return rows, "cuda: Numba's CUDA simulator, in a child process (no GPU found here)"


def print_op_table(seed: int = 0) -> int:
    """Print the table; return 0 if every error is below 1e-6 and every public op has a
    registry entry, else 1 (a CLI exit code)."""
    rows, cuda_note = all_op_checks(seed)
    print(f"{'op':<32}{'input':<8}" + "".join(f"{b + ' rel.err':>16}" for b in BACKENDS)
          + "  ok")
    ok = True
    for label, name, errs in rows:
        good = all(e < TOLERANCE for e in errs.values())
        ok &= good
        cells = (f"{errs[b]:.2e}" if b in errs else "–" for b in BACKENDS)
        print(f"{label:<32}{name:<8}" + "".join(f"{c:>16}" for c in cells)
              + f"  {'yes' if good else 'NO'}")
    missing = unregistered_ops()
    if missing:
        ok = False
        print(f"\npublic ops with no registry entry (minieffnet/ops/registry.py): "
              f"{', '.join(missing)}")
    n = sum(len(errs) for _, _, errs in rows)
    print(f"\n{cuda_note}. \"–\": the op has no such backend (under cuda, ops without CUDA "
          "kernels\nrun their Numba path).")
    print(f"{n} gradients of {len(OPS)} ops checked in float64 by centred differences "
          f"(h=1e-6, random upstream gradient): {'all' if ok else 'NOT all'} below {TOLERANCE:g}")
    return 0 if ok else 1
