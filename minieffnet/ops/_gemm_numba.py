"""The convolutions' matrix products on Numba's own threads: OpenBLAS's ``cblas_?gemm``
called from inside ``prange`` kernels.

Why: :mod:`._blas` splits a product over a pool of Python threads, and handing slices to
that pool costs ~86 µs (waking a sleeping thread in these VMs), about a parallel Numba
kernel's launch (~65 µs with sleeping OpenMP workers). A training step of the study's small
networks makes a few hundred such hand-offs. Run on Numba's threads, a product is one more
parallel kernel, and the OpenMP workers may spin briefly between kernels instead of sleeping
(:mod:`minieffnet._threads`), because no other pool then competes with them for the cores.

The gemm is called through its address (:func:`gemm_address`, found in the OpenBLAS that
NumPy loaded), passed to the kernels as an integer and called by :func:`call_gemm`, so the
kernels stay cacheable (a ctypes function object would make them process-specific). Only
the ILP64 interface of NumPy's bundled OpenBLAS (``scipy_cblas_sgemm64_``, 64-bit ints) is
used; where it is missing, :mod:`._blas` keeps its Python-thread path.

Row-major arguments throughout: ``gemm(order, transa, transb, M, N, K, alpha, A, lda, B, ldb,
beta, C, ldc)`` computes ``C = alpha * op(A) @ op(B) + beta * C`` with C (M, N).
"""
from __future__ import annotations

import functools

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from .._threads import GEMM_SYMBOLS, openblas_symbol

_ROW_MAJOR, NO_TRANS, _TRANS = 101, 111, 112


@functools.cache
def gemm_address(dtype) -> int | None:
    """The address of OpenBLAS's ILP64 ``cblas_sgemm`` (float32) or ``cblas_dgemm``
    (float64), or None when this process has no such library."""
    name = GEMM_SYMBOLS.get(np.dtype(dtype).name)
    return None if name is None else openblas_symbol(name)


@intrinsic
def call_gemm(typingctx, address, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c,
               ldc):
    """Call the row-major gemm at ``address`` (an integer); ``transa``, ``transb`` select
    op(A), op(B). a, b, c: data addresses (``arr.ctypes.data``); sizes int64; alpha and beta
    in the matrices' float type, which picks sgemm's or dgemm's signature."""
    sig = types.void(address, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

    def codegen(context, builder, signature, args):
        i32, i64, ptr = ir.IntType(32), ir.IntType(64), ir.IntType(8).as_pointer()
        real = context.get_value_type(signature.args[6])
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, real, ptr, i64,
                                               ptr, i64, real, ptr, i64])
        address, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc = args
        fn = builder.inttoptr(address, fnty.as_pointer())
        as_ptr = functools.partial(builder.inttoptr, typ=ptr)
        builder.call(fn, [ir.Constant(i32, _ROW_MAJOR), builder.trunc(transa, i32),
                          builder.trunc(transb, i32), m, n, k, alpha, as_ptr(a), lda, as_ptr(b),
                          ldb, beta, as_ptr(c), ldc])
        return context.get_dummy_value()

    return sig, codegen


# The kernels take each operand as (data, transposed?, leading dimension) so that the
# views the convolutions pass (a weight's transpose, im2col's strided columns) need no copy.
@njit(cache=True, parallel=True)
def _products_kernel(address, w, ta, lda, x, ldx, out, parts):
    """out[n] = op(w) @ x[n], the samples cut into ``parts`` slices, one per thread.
    op(w) (O, K); x (N, K, P) with rows ``ldx`` apart; out (N, O, P) C-contiguous."""
    N, K, P = x.shape
    O = out.shape[1]
    one, zero = out.dtype.type(1), out.dtype.type(0)
    for t in prange(parts):
        for i in range(t * N // parts, (t + 1) * N // parts):
            call_gemm(address, ta, np.int64(NO_TRANS), np.int64(O), np.int64(P),
                       np.int64(K), one, w.ctypes.data, lda, x[i].ctypes.data, ldx, zero,
                       out[i].ctypes.data, np.int64(P))


@njit(cache=True, parallel=True)
def _columns_kernel(address, w, ta, lda, x, out, parts):
    """out[:, cols] = op(w) @ x[:, cols] for ``parts`` slices of the columns, one per
    thread: the folded product (the batch joined to the pixels). x (K, M), out (O, M)
    C-contiguous."""
    K, M = x.shape
    O = out.shape[0]
    one, zero = out.dtype.type(1), out.dtype.type(0)
    for t in prange(parts):
        lo, hi = t * M // parts, (t + 1) * M // parts
        if hi > lo:
            call_gemm(address, ta, np.int64(NO_TRANS), np.int64(O), np.int64(hi - lo),
                       np.int64(K), one, w.ctypes.data, lda, x[:, lo:].ctypes.data,
                       np.int64(M), zero, out[:, lo:].ctypes.data, np.int64(M))


@njit(cache=True, parallel=True)
def _outer_kernel(address, d, ldd, x, ldx, acc, parts):
    """acc[t] += sum over thread t's samples n of d[n] @ x[n].T: a weight gradient's
    partial sums. d (N, O, P), x (N, K, P) with rows ``ldd``, ``ldx`` apart; acc
    (parts, O, K), zeroed by the caller."""
    N, O, P = d.shape
    K = x.shape[1]
    one = acc.dtype.type(1)
    for t in prange(parts):
        for i in range(t * N // parts, (t + 1) * N // parts):
            call_gemm(address, np.int64(NO_TRANS), np.int64(_TRANS), np.int64(O),
                       np.int64(K), np.int64(P), one, d[i].ctypes.data, ldd, x[i].ctypes.data,
                       ldx, one, acc[t].ctypes.data, np.int64(K))


@njit(cache=True, parallel=True)
def _outer_columns_kernel(address, d, x, acc, parts):
    """acc[t] = d[:, cols] @ x[:, cols].T over thread t's slice of the columns: the folded
    weight gradient. d (O, M), x (K, M) C-contiguous; acc (parts, O, K), zeroed."""
    O, M = d.shape
    K = x.shape[0]
    one = acc.dtype.type(1)
    for t in prange(parts):
        lo, hi = t * M // parts, (t + 1) * M // parts
        if hi > lo:
            call_gemm(address, np.int64(NO_TRANS), np.int64(_TRANS), np.int64(O),
                       np.int64(K), np.int64(hi - lo), one, d[:, lo:].ctypes.data,
                       np.int64(M), x[:, lo:].ctypes.data, np.int64(M), one,
                       acc[t].ctypes.data, np.int64(K))


def leading_dimension(a: np.ndarray) -> int | None:
    """The leading dimension of a's last two axes as BLAS wants it (row stride in elements),
    or None when its rows are not unit-stride."""
    if a.strides[-1] != a.itemsize or a.strides[-2] % a.itemsize:
        return None
    return max(a.strides[-2] // a.itemsize, a.shape[-1], 1)


def _operand(w: np.ndarray):
    """``(w or its transpose's base, transposed?, leading dimension)`` for a 2-D w that is
    C- or F-contiguous (a copy otherwise)."""
    if not w.flags.c_contiguous and w.T.flags.c_contiguous:
        return w.T, np.int64(_TRANS), np.int64(max(w.shape[0], 1))
    w = np.ascontiguousarray(w)
    return w, np.int64(NO_TRANS), np.int64(max(w.shape[1], 1))


def products(address: int, w: np.ndarray, x: np.ndarray, parts: int) -> np.ndarray:
    """``out[n] = w @ x[n]``: w (O, K), x (N, K, P) -> C-contiguous (N, O, P)."""
    if leading_dimension(x) is None:
        x = np.ascontiguousarray(x)
    out = np.empty((x.shape[0], w.shape[0], x.shape[2]), w.dtype)
    base, ta, lda = _operand(w)
    _products_kernel(address, base, ta, lda, x, np.int64(leading_dimension(x)), out, parts)
    return out


def folded_product(address: int, w: np.ndarray, x: np.ndarray, parts: int) -> np.ndarray:
    """``w @ x`` for x (K, M) C-contiguous: (O, M), the columns split over the threads."""
    out = np.empty((w.shape[0], x.shape[1]), w.dtype)
    base, ta, lda = _operand(w)
    _columns_kernel(address, base, ta, lda, np.ascontiguousarray(x), out, parts)
    return out


def outer_sums(address: int, d: np.ndarray, x: np.ndarray, parts: int,
               folded: bool = False) -> np.ndarray:
    """Per-thread partial sums of ``sum_n d[n] @ x[n].T`` (d (N, O, P), x (N, K, P)) or,
    ``folded``, of ``d @ x.T`` (d (O, M), x (K, M)): (parts, O, K), added in thread order
    by the caller (so the result is deterministic)."""
    if folded:
        d, x = np.ascontiguousarray(d), np.ascontiguousarray(x)
        acc = np.zeros((parts, d.shape[0], x.shape[0]), d.dtype)
        _outer_columns_kernel(address, d, x, acc, parts)
        return acc
    d = d if leading_dimension(d) is not None else np.ascontiguousarray(d)
    x = x if leading_dimension(x) is not None else np.ascontiguousarray(x)
    acc = np.zeros((parts, d.shape[1], x.shape[1]), d.dtype)
    _outer_kernel(address, d, np.int64(leading_dimension(d)), x, np.int64(leading_dimension(x)), acc, parts)
    return acc
