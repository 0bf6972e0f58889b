"""Softmax cross-entropy with label smoothing: the loss and its gradient in one call.

With ``log p = z - logsumexp(z)`` for a row of logits z and the smoothed target
``q = (1 - eps) * onehot(y) + eps / K`` (Szegedy et al., 2016; PyTorch's
``F.cross_entropy(..., label_smoothing=eps)``), the loss of one sample is

    -sum_k q_k log p_k = logsumexp(z) - sum_k q_k z_k          (because sum_k q_k = 1)

and its gradient is ``softmax(z) - q``. Both are averaged over the batch. Subtracting each
row's maximum before exponentiating keeps every ``exp`` in (0, 1] (the log-sum-exp trick).
The shifted logits are computed in float64: in float32, ``z - max(z)`` overflows to -inf for
logits near ±3e38 and the loss became NaN, while float64 holds every float32 difference, so
any finite float32 logits give a finite loss. (float64 logits further apart than ~1.8e308
give an infinite loss, which is then the true value rounded.) The work is O(N*K) on a small
array, so there is no Numba path and the float64 copy costs nothing that matters.
"""
from __future__ import annotations

import numpy as np

from ._checks import check_finite, check_float_array


def _check_labels(op: str, labels, n: int, k: int) -> np.ndarray:
    """Return labels as an integer array of shape (n,) with values in [0, k), else raise."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{op}: labels must be integers, got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"{op}: labels must have shape ({n},) to match logits, "
                         f"got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"{op}: labels must lie in [0, {k}), got values in "
                         f"[{labels.min()}, {labels.max()}]")
    return labels


def softmax_cross_entropy(logits: np.ndarray, labels, label_smoothing: float = 0.0):
    """Mean cross-entropy between softmax(logits) and (smoothed) one-hot labels.

    logits: (N, K), float32 or float64, finite; labels: (N,) integers in [0, K);
    label_smoothing: eps in [0, 1).
    Returns ``(loss, dlogits)``: loss a Python float, dlogits (N, K) = d loss / d logits in
    the dtype of logits.
    """
    op = "softmax_cross_entropy"
    check_float_array(op, "logits", logits, 2)
    N, K = logits.shape
    if N == 0 or K == 0:
        raise ValueError(f"{op}: logits must have at least one row and one class, "
                         f"got shape {logits.shape}")
    labels = _check_labels(op, labels, N, K)
    if not (0.0 <= float(label_smoothing) < 1.0):
        raise ValueError(f"{op}: label_smoothing must be in [0, 1), got {label_smoothing}")
    check_finite(op, "logits", logits)
    eps = float(label_smoothing)
    rows = np.arange(N)

    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    sum_e = e.sum(axis=1)
    target_z = (1.0 - eps) * z[rows, labels]
    if eps:  # skipped at 0: 0 * (-inf) would be NaN where the true loss is infinite
        target_z += (eps / K) * z.sum(axis=1)
    loss = float(np.mean(np.log(sum_e) - target_z))

    dlogits = e / sum_e[:, None]          # softmax
    dlogits[rows, labels] -= 1.0 - eps    # minus the smoothed target q
    if eps:
        dlogits -= eps / K
    dlogits /= N
    return loss, dlogits.astype(logits.dtype, copy=False)
