# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 03 — Depthwise and pointwise convolution
#
# **What you will learn**
#
# * what a depthwise convolution computes, written three ways — naive Python loops →
#   vectorised NumPy → a Numba kernel — each checked against the library and timed with
#   `time.perf_counter`;
# * its backward pass (for the input and the filters) as naive loops, checked against the
#   library and finite differences (the library's vectorised and compiled backward passes
#   are in `minieffnet/ops/depthwise.py` and `ops/_depthwise_numba.py`);
# * why a *depthwise-separable* convolution (depthwise, then 1×1 "pointwise") needs about
#   $k^2$ times fewer parameters and multiply-adds than a dense convolution;
# * why a pointwise (1×1) convolution is just a matrix product, and its backward two more.
#
# **Exercise version:** `exercises/03_depthwise_conv.ipynb` leaves the naive backward pass and
# the exercises to you; the `### CHECK` cells grade them (see `lessons/README.md`).
#
# Depthwise-separable convolutions come from Sifre (2014), Chollet's *Xception* (2017) and
# Howard et al.'s *MobileNets* (2017); EfficientNet's MBConv block inherits them from
# Sandler et al., *MobileNetV2: Inverted Residuals and Linear Bottlenecks* (CVPR 2018).

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from numba import njit

import minieffnet as me
from minieffnet.timing import best_time

rng = np.random.default_rng(0)


def best_ms(f):
    """Best of five wall-clock runs of f(), in milliseconds, after a warm-up call
    (:func:`minieffnet.timing.best_time`)."""
    return 1e3 * best_time(f)


# %% [markdown]
# ## 1. Dense versus depthwise
#
# A dense convolution mixes every input channel into every output channel. With input
# $x \in \mathbb R^{N\times C\times H\times W}$, zero-padded to $x^{pad}$, weights
# $w \in \mathbb R^{O\times C\times k\times k}$ and stride $s$:
#
# $$\text{out}[n, o, i, j] = \sum_{c}\sum_{a,b} w[o, c, a, b]\; x^{pad}[n, c, s i + a, s j + b].$$
#
# A **depthwise** convolution keeps channels apart: channel $c$ of the output sees only
# channel $c$ of the input, through its own $k\times k$ filter (PyTorch's `groups=C`, weight
# shape `(C, 1, k, k)`):
#
# $$\text{out}[n, c, i, j] = \sum_{a,b} w[c, 0, a, b]\; x^{pad}[n, c, s i + a, s j + b].$$
#
# Padding here is torchvision's: $(k-1)/2$ zeros on every side, so stride 1 keeps the size.
#
# ### Backward
#
# Each tap $(a, b)$ links one output element to one input element with weight $w[c,0,a,b]$, so
# the gradient flows back along the same links:
#
# $$dx^{pad}[n, c, s i + a, s j + b] \mathrel{+}= w[c, 0, a, b]\; d\text{out}[n, c, i, j],
#   \qquad dw[c, 0, a, b] = \sum_{n, i, j} d\text{out}[n, c, i, j]\; x^{pad}[n, c, s i + a, s j + b],$$
#
# and $dx$ is $dx^{pad}$ with the padding cropped off (gradient that lands on a padded zero
# belongs to no input).

# %% [markdown]
# ## 2. Naive loops
#
# Straight from the formulas: one Python loop per index. Slow, but obviously right. The
# backward visits the same links as the forward: for every output element and every tap, it
# sends the gradient back to the input element and to the weight that produced it.

# %%
def depthwise_forward_naive(x, w, stride=1):
    N, C, H, W = x.shape
    k = w.shape[2]
    p = (k - 1) // 2
    xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    Ho, Wo = (H + 2 * p - k) // stride + 1, (W + 2 * p - k) // stride + 1
    out = np.zeros((N, C, Ho, Wo), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    acc = 0.0
                    for a in range(k):
                        for b in range(k):
                            acc += w[c, 0, a, b] * xpad[n, c, stride * i + a, stride * j + b]
                    out[n, c, i, j] = acc
    return out


def depthwise_backward_naive(dout, x, w, stride=1):
    N, C, H, W = x.shape
    k = w.shape[2]
    p = (k - 1) // 2
    xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxpad = np.zeros_like(xpad)
    dw = np.zeros_like(w)
    Ho, Wo = dout.shape[2:]
    # accumulate into dxpad and dw along every (output, tap) link; return (dx, dw), where
    # dx (N, C, H, W) is dxpad without its padding
    ### BEGIN SOLUTION
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    g = dout[n, c, i, j]
                    for a in range(k):
                        for b in range(k):
                            dxpad[n, c, stride * i + a, stride * j + b] += w[c, 0, a, b] * g
                            dw[c, 0, a, b] += g * xpad[n, c, stride * i + a, stride * j + b]
    return dxpad[:, :, p:p + H, p:p + W], dw
    ### END SOLUTION


# %%
### CHECK: the naive forward and backward against the library
x = rng.standard_normal((2, 4, 7, 7))
w = rng.standard_normal((4, 1, 3, 3))
for stride in (1, 2):
    out_lib, cache = me.ops.depthwise_conv2d_forward(x, w, stride)
    out_naive = depthwise_forward_naive(x, w, stride)
    dout = rng.standard_normal(out_lib.shape)
    dx_lib, dw_lib = me.ops.depthwise_conv2d_backward(dout, cache)
    dx_naive, dw_naive = depthwise_backward_naive(dout, x, w, stride)
    print(f"--- stride {stride}")
    print(me.compare("out", out_lib, out_naive))
    print(me.compare("dx", dx_lib, dx_naive))
    print(me.compare("dw", dw_lib, dw_naive))
    assert me.rel_error(out_lib, out_naive) < 1e-12
    assert me.rel_error(dx_lib, dx_naive) < 1e-12 and me.rel_error(dw_lib, dw_naive) < 1e-12

# %% [markdown]
# And the library's backward against finite differences (both backends; 5×5 kernel, stride 2,
# and TensorFlow's asymmetric "same" padding too):

# %%
for backend in ("numpy", "numba"):
    for k, stride, padding in ((3, 1, "symmetric"), (5, 2, "symmetric"), (5, 2, "same")):
        wk = rng.standard_normal((4, 1, k, k))
        with me.use_backend(backend):
            res = me.check_gradients(
                lambda x, w: me.ops.depthwise_conv2d_forward(x, w, stride, padding),
                me.ops.depthwise_conv2d_backward, {"x": x, "w": wk})
        print(f"{backend:5} k={k} s={stride} {padding:9}: "
              + ", ".join(f"d{n} {r.error:.1e}" for n, r in res.items()))
        assert all(r.error < 1e-7 for r in res.values())

# %% [markdown]
# ## 3. Vectorised NumPy: loop over the taps, not the pixels
#
# The sum has only $k^2$ terms; each term is a whole-array product of one weight per channel
# with a *shifted, strided view* of the padded input. So we loop over the $k^2$ taps and let
# NumPy do the $N\cdot C\cdot H_o\cdot W_o$ multiply-adds of each in one go. (This is the
# library's NumPy reference.)

# %%
def depthwise_forward_numpy(x, w, stride=1):
    N, C, H, W = x.shape
    k = w.shape[2]
    p = (k - 1) // 2
    xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    Ho, Wo = (H + 2 * p - k) // stride + 1, (W + 2 * p - k) // stride + 1
    out = np.zeros((N, C, Ho, Wo), dtype=x.dtype)
    for a in range(k):
        for b in range(k):
            window = xpad[:, :, a:a + stride * (Ho - 1) + 1:stride, b:b + stride * (Wo - 1) + 1:stride]
            out += w[:, 0, a, b][None, :, None, None] * window
    return out


print(me.compare("numpy vs naive", depthwise_forward_numpy(x, w, 2), depthwise_forward_naive(x, w, 2)))
assert np.allclose(depthwise_forward_numpy(x, w, 2), depthwise_forward_naive(x, w, 2))

# %% [markdown]
# ## 4. Numba: the naive loops, compiled
#
# Numba compiles the *naive* loop nest to machine code. No cleverness yet: one thread, the
# same six loops. (The library's kernel goes further — channel tiles that keep the late
# stages' 4×4 images vectorised, parallel tasks, no padded copy; read the comment that opens
# the Numba section of `minieffnet/ops/depthwise.py`.)

# %%
@njit
def depthwise_forward_numba(x, w, stride):
    N, C, H, W = x.shape
    k = w.shape[2]
    p = (k - 1) // 2
    Ho, Wo = (H + 2 * p - k) // stride + 1, (W + 2 * p - k) // stride + 1
    out = np.zeros((N, C, Ho, Wo), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    acc = 0.0
                    for a in range(k):
                        iy = stride * i + a - p
                        if iy < 0 or iy >= H:          # a padded row: contributes zero
                            continue
                        for b in range(k):
                            ix = stride * j + b - p
                            if 0 <= ix < W:
                                acc += w[c, 0, a, b] * x[n, c, iy, ix]
                    out[n, c, i, j] = acc
    return out


print(me.compare("numba vs naive", depthwise_forward_numba(x, w, 2), depthwise_forward_naive(x, w, 2)))
assert np.allclose(depthwise_forward_numba(x, w, 2), depthwise_forward_naive(x, w, 2))

# %% [markdown]
# ### Timing
#
# A small shape, so that the naive loops finish in well under a second: batch 4, 32 channels,
# 16×16, 3×3 filters, float64. Numba's first call compiles, so `best_ms` discards it.

# %%
xt = rng.standard_normal((4, 32, 16, 16))
wt = rng.standard_normal((32, 1, 3, 3))
timings = {}
t0 = time.perf_counter()
ref = depthwise_forward_naive(xt, wt)
timings["naive Python loops"] = 1e3 * (time.perf_counter() - t0)
timings["NumPy over taps"] = best_ms(lambda: depthwise_forward_numpy(xt, wt))
timings["Numba naive loops"] = best_ms(lambda: depthwise_forward_numba(xt, wt, 1))
with me.use_backend("numpy"):
    timings["library, numpy backend"] = best_ms(lambda: me.ops.depthwise_conv2d_forward(xt, wt))
with me.use_backend("numba"):
    timings["library, numba backend"] = best_ms(lambda: me.ops.depthwise_conv2d_forward(xt, wt))
    out_fast, _ = me.ops.depthwise_conv2d_forward(xt, wt)
print(me.compare("library numba vs naive", out_fast, ref))
assert np.allclose(out_fast, ref, rtol=1e-10, atol=1e-12)
for name, ms in timings.items():
    print(f"{name:<26} {ms:9.3f} ms   ({timings['naive Python loops'] / ms:7.0f}x naive)")

# %% [markdown]
# ## 5. Parameters and multiply-adds: depthwise-separable versus dense
#
# For a $k\times k$ convolution from $C$ to $O$ channels on an $H_o\times W_o$ output:
#
# | layer | parameters | multiply-adds |
# |---|---|---|
# | dense | $O\,C\,k^2$ | $O\,C\,k^2\,H_oW_o$ |
# | depthwise | $C\,k^2$ | $C\,k^2\,H_oW_o$ |
# | pointwise (1×1) | $O\,C$ | $O\,C\,H_oW_o$ |
# | separable = depthwise + pointwise | $C(k^2 + O)$ | $C(k^2+O)\,H_oW_o$ |
#
# so the separable version costs a fraction $\dfrac{1}{O} + \dfrac{1}{k^2}$ of the dense one
# (MobileNets, Eq. 5): about $1/k^2$ — 9× cheaper for 3×3, 25× for 5×5.
#
# We count the parameters of real layers from `minieffnet.nn.layers` and compare with the
# formula, for a typical EfficientNet-B0 shape (stage 6: 672 channels, 5×5, 14×14).

# %%
from minieffnet.nn.layers import Conv2d, DepthwiseConv2d

C_, O_, k_, HW_ = 672, 672, 5, 14 * 14
layers = {
    "dense": Conv2d(C_, O_, k_, rng=rng),
    "depthwise": DepthwiseConv2d(C_, k_, rng=rng),
    "pointwise": Conv2d(C_, O_, 1, rng=rng),
}
params = {name: sum(p.data.size for p in layer.parameters()) for name, layer in layers.items()}
assert params["dense"] == O_ * C_ * k_ ** 2
assert params["depthwise"] == C_ * k_ ** 2
assert params["pointwise"] == O_ * C_
separable = params["depthwise"] + params["pointwise"]
for name, n in {**params, "separable": separable}.items():
    print(f"{name:<10} {n:>12,} parameters {n * HW_:>15,} multiply-adds")
ratio = separable / params["dense"]
print(f"separable / dense = {ratio:.4f}  (1/O + 1/k^2 = {1 / O_ + 1 / k_ ** 2:.4f})")
assert np.isclose(ratio, 1 / O_ + 1 / k_ ** 2)

# %%
ks = np.array([1, 3, 5, 7])
channels = np.array([16, 32, 64, 128, 256, 512, 1024])
fig, ax = plt.subplots(figsize=(6, 3.5))
for k in ks[1:]:
    ax.plot(channels, 1 / (1 / channels + 1 / k ** 2), "o-", label=f"k = {k}")
ax.set_xscale("log", base=2)
ax.set_xlabel("output channels O")
ax.set_ylabel("dense / separable cost")
ax.set_title("How much cheaper a depthwise-separable conv is")
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## 6. Pointwise convolution is a matrix product
#
# With $k = 1$ and stride 1 there is no window: every output pixel is the same linear map of
# the input pixel's channel vector. Flatten the pixels, $X_n \in \mathbb R^{C\times HW}$, and
# the weight, $W_2 \in \mathbb R^{O\times C}$:
#
# $$\text{Out}_n = W_2 X_n, \qquad dX_n = W_2^\top\, d\text{Out}_n, \qquad
#   dW_2 = \sum_n d\text{Out}_n\, X_n^\top .$$
#
# So the expansion and projection convolutions of every MBConv — most of EfficientNet's
# multiply-adds — run on BLAS, in both backends.

# %%
x = rng.standard_normal((3, 6, 5, 5))
w = rng.standard_normal((4, 6, 1, 1))
N, C, H, W = x.shape
X = x.reshape(N, C, H * W)
W2 = w.reshape(4, C)
out_mine = (W2 @ X).reshape(N, 4, H, W)            # matmul broadcasts over n
out_lib, cache = me.ops.pointwise_conv2d_forward(x, w)
out_conv, cache_conv = me.ops.conv2d_forward(x, w)  # the general conv takes the same path
dout = rng.standard_normal(out_lib.shape)
D = dout.reshape(N, 4, H * W)
dx_mine = (W2.T @ D).reshape(x.shape)
dw_mine = np.einsum("nop,ncp->oc", D, X).reshape(w.shape)
dx_lib, dw_lib = me.ops.pointwise_conv2d_backward(dout, cache)
print(me.compare("out", out_lib, out_mine))
print(me.compare("out conv2d", out_conv, out_mine))
print(me.compare("dx", dx_lib, dx_mine))
print(me.compare("dw", dw_lib, dw_mine))
for a, b in ((out_lib, out_mine), (out_conv, out_mine), (dx_lib, dx_mine), (dw_lib, dw_mine)):
    assert me.rel_error(a, b) < 1e-12
res = me.check_gradients(me.ops.pointwise_conv2d_forward, me.ops.pointwise_conv2d_backward,
                         {"x": x, "w": w})
print(", ".join(f"d{n} rel.err {r.error:.1e}" for n, r in res.items()))
assert all(r.error < 1e-7 for r in res.values())

# %% [markdown]
# ## Exercises
#
# 1. **A separable conv is a constrained dense conv.** A depthwise conv with filters
#    `dw (C, 1, k, k)` followed by a pointwise conv `pw (O, C, 1, 1)` equals one dense conv
#    with weights `w_dense[o, c, a, b] = pw[o, c] · dw[c, 0, a, b]` — a dense filter bank of
#    rank one per (o, c) pair. Build `w_dense` and check with the library's `conv2d_forward`
#    (im2col + BLAS) that both give the same output, for stride 2.
# 2. **Where are the multiply-adds?** For one MBConv6 block with 5×5 depthwise at 40 input
#    and 40 output channels on a 28×28 map (expansion 40 → 240, depthwise 240, projection
#    240 → 40; ignore SE), compute the multiply-adds of the three convolutions and the
#    fraction `depthwise_share` done by the depthwise conv.

# %%
# Exercise 1: the dense weights (O, C, k, k) of the separable conv dwf, then pwf
C, O, k = 5, 7, 3
x = rng.standard_normal((2, C, 9, 9))
dwf = rng.standard_normal((C, 1, k, k))
pwf = rng.standard_normal((O, C, 1, 1))
### BEGIN SOLUTION
w_dense = pwf[:, :, 0, 0][:, :, None, None] * dwf[:, 0][None, :, :, :]
### END SOLUTION

# Exercise 2: multiply-adds of the three convolutions, and the depthwise conv's share
hw = 28 * 28
### BEGIN SOLUTION
macs = {"expand": 40 * 240 * hw, "depthwise": 240 * 25 * hw, "project": 240 * 40 * hw}
depthwise_share = macs["depthwise"] / sum(macs.values())
### END SOLUTION

# %%
### CHECK: exercise 1, a separable conv is a dense conv with rank-one filters
assert w_dense is not ..., "build w_dense first"
separable_out = me.ops.pointwise_conv2d_forward(me.ops.depthwise_conv2d_forward(x, dwf, 2)[0], pwf)[0]
dense_out = me.ops.conv2d_forward(x, w_dense, None, 2)[0]
print(me.compare("separable vs dense", separable_out, dense_out))
assert me.rel_error(separable_out, dense_out) < 1e-12

# %%
### CHECK: exercise 2, nearly a quarter of an MBConv6 5x5 block is depthwise
assert macs is not ... and depthwise_share is not ..., "compute macs and depthwise_share first"
print({k: f"{v:,}" for k, v in macs.items()}, f"depthwise share {depthwise_share:.1%}")
assert macs == {"expand": 7_526_400, "depthwise": 4_704_000, "project": 7_526_400}
assert abs(depthwise_share - 25 / (25 + 80)) < 1e-12
print("all exercises pass")
