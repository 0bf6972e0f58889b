"""The convolutions' matrix products, spread over the cores.

Why not just ``np.matmul``: minieffnet keeps OpenBLAS single-threaded (:mod:`minieffnet._threads`:
its idle threads spin between calls and starve Numba's), so one BLAS call uses one core, and
the products are split into one slice of the batch per core. Measured on the B0 shapes
(2 cores): the 1×1 convolutions at 32×32 pixels run 1.8× faster split in two. Where NumPy's
OpenBLAS exposes its ILP64 ``cblas_?gemm``, the slices run on Numba's threads
(:mod:`._gemm_numba`: a product is then one parallel kernel); otherwise, and for a product
with an epilogue (a Python callback), on a pool of Python threads (NumPy releases the GIL
inside BLAS).

Folding the batch into the pixel axis (one ``(O, K) @ (K, n*P)`` GEMM per slice instead of n
``(O, K) @ (K, P)`` ones) costs two transposing copies and pays in two cases, measured on every
1×1 convolution of B0 at 64 px (imagenet preset) and 32 px (cifar preset), batch 64, 2 cores:

- ``w @ x[n]`` (forward, and the input gradient with ``w.T``): each per-sample product streams
  all of w, which is cheap while w stays in cache and costly once it does not. Folding wins
  (1.2-3.5×) when w holds at least 256 KiB *and* a sample has at most 16 pixels (the head
  320 -> 1280 at 2×2: 3.9 -> 1.1 ms); everywhere else the per-sample products win (up to 2×).
- ``sum_n d[n] @ x[n].T`` (the weight gradient): per-sample, every product writes a whole
  (O, K) matrix for only P pixels of work, so folding wins below 128 pixels (up to 4× at 2×2);
  above, the per-sample products accumulated in place win by 1.3-1.8×.
"""
from __future__ import annotations

import concurrent.futures
from typing import Callable

import numba
import numpy as np

from ._gemm_numba import folded_product, gemm_address, outer_sums, products

# When to fold the batch into one GEMM (measured; see above).
FOLD_OUTER_BELOW_PIXELS = 128   # weight gradient: below this many pixels per sample
FOLD_PRODUCT_MAX_PIXELS = 16    # w @ x[n]: at most this many pixels per sample ...
FOLD_PRODUCT_MIN_WEIGHT_BYTES = 256 * 1024  # ... and a weight matrix at least this large
# Output block an epilogue finishes while in cache: well inside a core's L2 (1-2 MiB here).
EPILOGUE_BLOCK_BYTES = 512 * 1024

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


def shared_matmul(w: np.ndarray, x: np.ndarray,
                  epilogue: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
    """``out[n] = w @ x[n]``: w (O, K), x (N, K, P) -> C-contiguous (N, O, P).

    ``epilogue(block)``, when given, finishes the output in place block by block, each
    ``(n, O, P)`` block right after its product while it is still in cache (about
    :data:`EPILOGUE_BLOCK_BYTES`), on the thread that computed it: the fused evaluation
    layers apply BatchNorm's bias and swish this way instead of in a pass of their own.
    """
    N, K, P = x.shape
    O = w.shape[0]
    out = np.empty((N, O, P), dtype=np.result_type(w, x))
    step = max(1, EPILOGUE_BLOCK_BYTES // max(1, O * P * out.itemsize))

    def per_sample(lo: int, hi: int) -> None:
        if epilogue is None:
            np.matmul(w, x[lo:hi], out=out[lo:hi])
            return
        for a in range(lo, hi, step):
            b = min(a + step, hi)
            np.matmul(w, x[a:b], out=out[a:b])
            epilogue(out[a:b])

    def folded(lo: int, hi: int) -> None:  # the slice's samples join its pixels, then unfold
        out[lo:hi] = (w @ _fold(x[lo:hi])).reshape(O, hi - lo, P).transpose(1, 0, 2)
        if epilogue is not None:  # few pixels per sample: the slice is small
            epilogue(out[lo:hi])

    fold = P <= FOLD_PRODUCT_MAX_PIXELS and w.nbytes >= FOLD_PRODUCT_MIN_WEIGHT_BYTES
    address = gemm_address(out.dtype) if epilogue is None else None
    if address is not None:  # on Numba's threads (module docstring)
        if fold:
            out[...] = folded_product(address, w, _fold(x), _workers()).reshape(
                O, N, P).transpose(1, 0, 2)
            return out
        return products(address, w, x, min(_workers(), N))
    _parallel(folded if fold else per_sample, N)
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

    address = gemm_address(d.dtype)
    if address is not None:  # on Numba's threads (module docstring)
        fold = P < FOLD_OUTER_BELOW_PIXELS
        parts = (outer_sums(address, _fold(d), _fold(x), _workers(), folded=True) if fold
                 else outer_sums(address, d, x, min(_workers(), N)))
    else:
        parts = _parallel(folded if P < FOLD_OUTER_BELOW_PIXELS else per_sample, N)
    return parts[0] if len(parts) == 1 else np.sum(parts, axis=0)
