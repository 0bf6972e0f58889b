"""Convolution -> BatchNorm -> swish in evaluation mode: BatchNorm folded into the convolution.

In evaluation BatchNorm is a fixed per-channel map, ``y = h * s + (beta - mean * s)`` with
``s = gamma / sqrt(var + eps)``, and the convolution is linear in its weights, so

    BN_eval(conv(x, w)) = conv(x, w * s) + (beta - mean * s)        (s per output channel)

which is exact in real arithmetic (float32 rounds w * s once). What is left after the matrix
product, the bias and swish, is applied by :func:`~minieffnet.ops._blas.shared_matmul`'s
epilogue to each block of the product's output while it is still in cache: the stage writes
its output once, instead of the product writing it and BatchNorm reading it and writing a
second array. Every 1×1 expansion, projection and head convolution of MBConv and the stem
take this path in evaluation (``ConvBN`` in :mod:`minieffnet.nn.layers`); in training the
statistics are those of the whole batch, unknown until the product is finished, so training
runs the two ops.

The NumPy reference is literally :func:`~minieffnet.ops.conv2d_forward` followed by
BatchNorm's evaluation map (:mod:`._bn_epilogue`); ``tests/test_registry.py`` holds the two
paths equal. The backward recomputes the convolution's output from the cached input and runs
the two ops' backward passes, as :mod:`.depthwise_bn` does, so gradients in evaluation mode
(Grad-CAM, saliency) work as before.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .. import backend
from ._bn_epilogue import FusedEvalCache, check_params, eval_statistics, normalize_ref
from ._batchnorm_numba import ROWS_BELOW_PIXELS
from ._checks import check_finite
from ._fastmath import FMA, sigmoid, zero_like
from .batchnorm import BatchNormCache, batchnorm2d_backward
from ._blas import FOLD_PRODUCT_MAX_PIXELS, FOLD_PRODUCT_MIN_WEIGHT_BYTES, shared_matmul
from ._gemm_numba import NO_TRANS, call_gemm, gemm_address, leading_dimension
from .conv import check_inputs, columns, conv2d_backward, conv2d_forward, conv_product
from .padding import conv_geometry

_OP = "conv_bn_eval_forward"


# error_model="numpy" (parallel kernels' default): with Python's, the sigmoid's division
# checks for zero and the loop does not vectorise (measured 8x slower).
@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", *FMA})
def _bias_act_kernel(y, bias, swish, sums):
    """y (R, L) <- act(y + bias[r % B]) in place, bias (B, L); sums (R,) <- each row's sum of
    the result (the NaN / infinity check). Serial: it runs on a BLAS worker thread."""
    R, L = y.shape
    B = bias.shape[0]
    for r in range(R):
        yr, br = y[r], bias[r % B]
        acc = zero_like(br[0])  # typed: a float64 0.0 would drag the float32 loop with it
        for j in range(L):
            v = yr[j] + br[j]
            if swish:
                v = v * sigmoid(v)
            yr[j] = v
            acc += v
        sums[r] = acc


def _bias_epilogue(bias: np.ndarray, P: int, swish: bool):
    """``(epilogue, row_sums)``: an epilogue for :func:`conv_product` that applies
    ``act(y + bias[o])`` to each (n, O, P) block, and the list it appends each block's row
    sums to. Like BatchNorm's kernels (:mod:`._batchnorm_numba`), it walks one (O, P) channel
    row at a time on large maps and a sample's whole (O * P) row below
    ``ROWS_BELOW_PIXELS`` pixels, where P-long rows would be all loop overhead; the bias is
    repeated to one value per pixel so that both are the same loop."""
    O = bias.shape[0]
    per_value = np.repeat(bias, P).reshape(O, P)
    by_sample = P < ROWS_BELOW_PIXELS
    if by_sample:
        per_value = per_value.reshape(1, O * P)
    row_sums: list[np.ndarray] = []

    def epilogue(block: np.ndarray) -> None:        # (n, O, P), on a BLAS worker thread
        rows = block.reshape(block.shape[0], -1) if by_sample else block.reshape(-1, P)
        sums = np.empty(rows.shape[0], block.dtype)
        _bias_act_kernel(rows, per_value, swish, sums)
        row_sums.append(sums)                       # list.append is atomic

    return epilogue, row_sums


@njit(cache=True, parallel=True)
def _products_bias_act_kernel(address, w, lda, x, ldx, out, per_value, swish, sums, parts):
    """out[n] = act(w @ x[n] + bias) for ``parts`` slices of the samples, one per thread,
    each sample's product finished by :func:`_bias_act_kernel` while it is in cache.
    w (O, K) C-contiguous; x (N, K, P), rows ``ldx`` apart; out (N, O, P); per_value: the
    bias, (O, P) or (1, O * P) (:func:`_bias_epilogue`'s layouts); sums (N, rows)."""
    N, K, P = x.shape
    O = out.shape[1]
    rows = per_value.shape[0]
    one, zero = out.dtype.type(1), out.dtype.type(0)
    for t in prange(parts):
        for i in range(t * N // parts, (t + 1) * N // parts):
            call_gemm(address, np.int64(NO_TRANS), np.int64(NO_TRANS), np.int64(O),
                       np.int64(P), np.int64(K), one, w.ctypes.data, lda, x[i].ctypes.data,
                       ldx, zero, out[i].ctypes.data, np.int64(P))
            _bias_act_kernel(out[i].reshape(rows, O * P // rows), per_value, swish, sums[i])


def _fused_on_numba_threads(address, x, w_folded, stride, pads, out_hw, bias, swish):
    """:func:`_fused_numba`'s product and epilogue on Numba's threads (:mod:`._gemm_numba`):
    ``(out, row sums)``."""
    N = x.shape[0]
    O, _, k, _ = w_folded.shape
    P = out_hw[0] * out_hw[1]
    cols = columns(x, k, stride, pads)
    w2 = np.ascontiguousarray(w_folded.reshape(O, -1))
    per_value = np.repeat(bias, P).reshape(O, P)
    if P < ROWS_BELOW_PIXELS:
        per_value = per_value.reshape(1, O * P)
    rows = per_value.shape[0]
    sums = np.empty((N, rows), x.dtype)
    if P <= FOLD_PRODUCT_MAX_PIXELS and w2.nbytes >= FOLD_PRODUCT_MIN_WEIGHT_BYTES:
        # A large weight on a tiny map: one folded product (_blas), then the epilogue.
        out = shared_matmul(w2, cols)
        _bias_act_kernel(out.reshape(N * rows, -1), per_value, swish, sums.reshape(-1))
    else:
        out = np.empty((N, O, P), x.dtype)
        _products_bias_act_kernel(address, w2, np.int64(w2.shape[1]), cols,
                                  np.int64(leading_dimension(cols)), out, per_value, swish,
                                  sums, min(numba.get_num_threads(), N))
    return out.reshape(N, O, *out_hw), sums.reshape(-1)


def _fused_ref(x, w, stride, padding, pads, out_hw, gamma, beta, mean, inv_std, activation):
    h, _ = conv2d_forward(x, w, None, stride, padding)
    return normalize_ref(h, gamma, beta, mean, inv_std, activation)


def _fused_numba(x, w, stride, padding, pads, out_hw, gamma, beta, mean, inv_std, activation):
    scale = gamma * inv_std                        # float64, per output channel
    # Folded in x's dtype: a float64 product would cost a pass over the weights that, for the
    # head's 1280 x 320 weights on a 2 x 2 map, takes as long as the product itself.
    w_folded = w * scale.astype(x.dtype)[:, None, None, None]
    bias = (beta - mean * scale).astype(x.dtype)
    swish = activation == "swish"
    address = gemm_address(x.dtype)
    if address is not None:
        return _fused_on_numba_threads(address, x, w_folded, stride, pads, out_hw, bias, swish)
    epilogue, row_sums = _bias_epilogue(bias, out_hw[0] * out_hw[1], swish)
    out, _ = conv_product(x, w_folded, stride, pads, out_hw, epilogue)
    return out, np.concatenate(row_sums)


def conv_bn_eval_forward(x: np.ndarray, w: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                         running_mean: np.ndarray, running_var: np.ndarray, *, stride: int = 1,
                         padding: str = "symmetric", eps: float = 1e-5,
                         activation: str | None = "swish"):
    """``act(BN_eval(conv2d(x, w)))`` with BatchNorm folded into the convolution.

    x: (N, C, H, W); w: (O, C, k, k), k odd, no bias; gamma, beta, running_mean, running_var:
    (O,); all one float dtype. stride, padding: as :func:`~minieffnet.ops.conv2d_forward`;
    eps, activation (None or "swish"): as :func:`~minieffnet.ops.batchnorm2d_forward`. The
    running statistics are read, never updated.

    Returns ``(out (N, O, Ho, Wo), cache)``. Raises ValueError for malformed input and
    NonFiniteError for NaN / infinity in the output.
    """
    check_inputs(_OP, x, w, None)
    check_params(_OP, x, gamma, beta, running_mean, running_var, activation, w.shape[0])
    H, W = x.shape[2:]
    pads, out_hw = conv_geometry(_OP, H, W, w.shape[2], stride, padding)
    x = np.ascontiguousarray(x)
    mean, inv_std = eval_statistics(running_mean, running_var, eps)
    with np.errstate(invalid="ignore", over="ignore"):
        out, sums = backend.pick(_fused_ref, _fused_numba)(
            x, w, stride, padding, pads, out_hw, gamma, beta, mean, inv_std, activation)
    check_finite(_OP, "output", sums)
    return out, FusedEvalCache(x, w, stride, padding, gamma, beta, mean, inv_std, activation)


def conv_bn_eval_backward(dout: np.ndarray, cache: FusedEvalCache):
    """Gradients of :func:`conv_bn_eval_forward`.

    dout: (N, O, Ho, Wo). Returns ``(dx (N, C, H, W), dw (O, C, k, k), dgamma (O,),
    dbeta (O,))``, each in x's dtype; the BatchNorm part is evaluation mode's
    (``dx = gamma * inv_std * dout`` through the fixed statistics).
    """
    x, w, stride, padding, gamma, beta, mean, inv_std, activation = cache
    h, conv_cache = conv2d_forward(x, w, None, stride, padding)  # recomputed
    dh, dgamma, dbeta = batchnorm2d_backward(
        dout, BatchNormCache(h, gamma, beta, mean, inv_std, False, activation))
    dx, dw, _ = conv2d_backward(dh, conv_cache)
    return dx, dw, dgamma, dbeta
