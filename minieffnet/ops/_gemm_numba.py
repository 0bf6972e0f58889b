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


# One kernel for every product, its operands given as addresses and byte steps, so that it
# has one signature per float type whatever the arrays' layouts (a weight's transpose,
# im2col's strided columns): each signature of a parallel kernel costs ~1 s to compile on a
# cold start, which the start-up target cannot afford four or five times over.
SPLIT_NONE, SPLIT_N, SPLIT_K = 0, 1, 2


@njit(cache=True, parallel=True)
def _gemms_kernel(address, ta, tb, m, n, k, alpha, beta, a, lda, sa, b, ldb, sb, c, ldc, sc,
                  st, count, split, parts):
    """``parts`` threads share ``count`` gemm calls or one gemm's columns.

    split SPLIT_NONE: call i (thread t taking calls t*count//parts ...) multiplies the
    operands at ``a + i*sa``, ``b + i*sb`` into ``c + i*sc + t*st`` (``st``: one accumulator
    per thread, for weight gradients with beta = 1). SPLIT_N / SPLIT_K: one gemm whose n or
    k extent (``count`` columns) is cut into ``parts`` ranges; the range starting at column
    ``lo`` starts at ``a + lo*sa``, ``b + lo*sb``, ``c + lo*sc + t*st``.
    """
    for t in prange(parts):
        lo, hi = t * count // parts, (t + 1) * count // parts
        if split == SPLIT_NONE:
            for i in range(lo, hi):
                call_gemm(address, ta, tb, m, n, k, alpha, a + i * sa, lda, b + i * sb, ldb,
                          beta, c + i * sc + t * st, ldc)
        elif hi > lo:
            call_gemm(address, ta, tb, m, hi - lo if split == SPLIT_N else n,
                      hi - lo if split == SPLIT_K else k, alpha, a + lo * sa, lda,
                      b + lo * sb, ldb, beta, c + lo * sc + t * st, ldc)


def _gemms(address, ta, tb, m, n, k, beta, a, lda, sa, b, ldb, sb, c, ldc, sc, st, count,
           split, parts, dtype) -> None:
    """:func:`_gemms_kernel` with every size as int64 and alpha = 1, beta in ``dtype``;
    a, b, c: arrays, whose data addresses are taken here (the caller keeps them alive)."""
    i64 = np.int64
    _gemms_kernel(address, i64(ta), i64(tb), i64(m), i64(n), i64(k), dtype.type(1),
                  dtype.type(beta), i64(a.ctypes.data), i64(lda), i64(sa),
                  i64(b.ctypes.data), i64(ldb), i64(sb), i64(c.ctypes.data), i64(ldc),
                  i64(sc), i64(st), i64(count), i64(split), i64(parts))


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
        return w.T, _TRANS, max(w.shape[0], 1)
    w = np.ascontiguousarray(w)
    return w, NO_TRANS, max(w.shape[1], 1)


def products(address: int, w: np.ndarray, x: np.ndarray, parts: int) -> np.ndarray:
    """``out[n] = w @ x[n]``: w (O, K), x (N, K, P) -> C-contiguous (N, O, P)."""
    if leading_dimension(x) is None:
        x = np.ascontiguousarray(x)
    N, K, P = x.shape
    out = np.empty((N, w.shape[0], P), w.dtype)
    base, ta, lda = _operand(w)
    _gemms(address, ta, NO_TRANS, w.shape[0], P, K, 0, base, lda, 0, x, leading_dimension(x),
           x.strides[0], out, P, out.strides[0], 0, N, SPLIT_NONE, parts, out.dtype)
    return out


def folded_product(address: int, w: np.ndarray, x: np.ndarray, parts: int) -> np.ndarray:
    """``w @ x`` for x (K, M): (O, M), the columns split over the threads."""
    x = np.ascontiguousarray(x)
    K, M = x.shape
    out = np.empty((w.shape[0], M), w.dtype)
    base, ta, lda = _operand(w)
    _gemms(address, ta, NO_TRANS, w.shape[0], M, K, 0, base, lda, 0, x, M, x.itemsize, out, M,
           out.itemsize, 0, M, SPLIT_N, parts, out.dtype)
    return out


def outer_sums(address: int, d: np.ndarray, x: np.ndarray, parts: int,
               folded: bool = False) -> np.ndarray:
    """Per-thread partial sums of ``sum_n d[n] @ x[n].T`` (d (N, O, P), x (N, K, P)) or,
    ``folded``, of ``d @ x.T`` (d (O, M), x (K, M)): (parts, O, K), added in thread order
    by the caller (so the result is deterministic)."""
    if folded:
        d, x = np.ascontiguousarray(d), np.ascontiguousarray(x)
        (O, M), K = d.shape, x.shape[0]
        acc = np.zeros((parts, O, K), d.dtype)
        _gemms(address, NO_TRANS, _TRANS, O, K, M, 1, d, M, d.itemsize, x, M, x.itemsize, acc,
               K, 0, acc.strides[0], M, SPLIT_K, parts, acc.dtype)
        return acc
    d = d if leading_dimension(d) is not None else np.ascontiguousarray(d)
    x = x if leading_dimension(x) is not None else np.ascontiguousarray(x)
    N, O, P = d.shape
    K = x.shape[1]
    acc = np.zeros((parts, O, K), d.dtype)
    _gemms(address, NO_TRANS, _TRANS, O, K, P, 1, d, leading_dimension(d), d.strides[0], x,
           leading_dimension(x), x.strides[0], acc, K, 0, acc.strides[0], N, SPLIT_NONE, parts,
           acc.dtype)
    return acc
