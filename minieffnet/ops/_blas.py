"""The convolutions' matrix products, spread over the cores.

Why not just ``np.matmul``: minieffnet keeps OpenBLAS single-threaded (:mod:`minieffnet._threads`:
its idle threads spin between calls and starve Numba's), so one BLAS call uses one core. NumPy
releases the GIL inside BLAS, so a few Python threads, each multiplying its own slice of the
batch, use every core with nothing left spinning afterwards. Measured on the B0 shapes
(2 cores): the 1×1 convolutions at 32×32 pixels run 1.8× faster split in two.

Tiny images are the other case: with 2×2 or 4×4 pixels a per-sample product is a sliver
(``O x K @ K x 4``), and one GEMM over the batch folded into the pixel axis is up to 4× faster,
even counting the two transposing copies. Above 128 pixels the weight gradient is the other
way round: per-sample products accumulated in place beat the folded GEMM by 1.3-1.8×, because
the two folding copies of (N, K, P) arrays cost more than the GEMM shape gains.
"""
from __future__ import annotations

import concurrent.futures

import numba
import numpy as np

FOLD_BELOW_PIXELS = 128  # below this many pixels per sample, fold the batch into one GEMM

_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _workers() -> int:
    return numba.get_num_threads()


def _parallel(fn, n: int) -> list:
    """``[fn(start, stop), ...]`` over ``range(n)`` cut into one slice per worker, in slice
    order (so any reduction of the results is deterministic)."""
    global _pool
    parts = min(_workers(), n)
    if parts <= 1:
        return [fn(0, n)]
    if _pool is None or _pool._max_workers < parts:
        _pool = concurrent.futures.ThreadPoolExecutor(parts, thread_name_prefix="minieffnet-blas")
    bounds = np.linspace(0, n, parts + 1).astype(int)
    futures = [_pool.submit(fn, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
    return [f.result() for f in futures]  # re-raises a worker's exception here


def _fold(a: np.ndarray) -> np.ndarray:
    """(N, K, P) -> (K, N * P): the batch joins the pixels (a copy unless already K-major)."""
    return a.transpose(1, 0, 2).reshape(a.shape[1], -1)


def shared_matmul(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``out[n] = w @ x[n]``: w (O, K), x (N, K, P) -> C-contiguous (N, O, P)."""
    N, K, P = x.shape
    O = w.shape[0]
    if P < FOLD_BELOW_PIXELS:
        out = (w @ _fold(x)).reshape(O, N, P)
        return np.ascontiguousarray(out.transpose(1, 0, 2))
    out = np.empty((N, O, P), dtype=np.result_type(w, x))
    _parallel(lambda lo, hi: np.matmul(w, x[lo:hi], out=out[lo:hi]), N)
    return out


def summed_outer(d: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``sum_n d[n] @ x[n].T``: d (N, O, P), x (N, K, P) -> (O, K), the weight gradient."""
    N, O, P = d.shape
    K = x.shape[1]

    def per_sample(lo: int, hi: int) -> np.ndarray:
        acc = np.zeros((O, K), d.dtype)
        product = np.empty((O, K), d.dtype)
        for n in range(lo, hi):
            np.matmul(d[n], x[n].T, out=product)
            acc += product
        return acc

    def folded(lo: int, hi: int) -> np.ndarray:
        return _fold(d[lo:hi]) @ _fold(x[lo:hi]).T

    parts = _parallel(folded if P < FOLD_BELOW_PIXELS else per_sample, N)
    return parts[0] if len(parts) == 1 else np.sum(parts, axis=0)
