# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 09 — Depthwise convolution on a GPU with `numba.cuda`
#
# **What you will learn**
#
# * the CUDA programming model in one idea: *one thread per output element*, threads grouped
#   in blocks, and the **bounds guard** every kernel needs because the last block overhangs;
# * how to write a kernel next to a NumPy *spec* and test one against the other (the style
#   of Sasha Rush's GPU-Puzzles);
# * the library's **tiled** kernel: a block copies its input tile plus a *halo* into shared
#   memory once, waits at a barrier, then every thread reads its k×k operands from fast
#   memory — and why that barrier must never sit inside a branch some threads skip;
# * that `"cuda"` is a backend like `"numpy"` and `"numba"`: under
#   `me.use_backend("cuda")` the same public `depthwise_conv2d_forward` / `_backward` run
#   these kernels and agree with the CPU op; and how to pick the naive or tiled kernels on
#   arrays that stay on the GPU.
#
# **No GPU?** Numba ships a CUDA *simulator* that runs every thread as a Python thread on
# the CPU. It must be switched on *before numba is first imported*, which is why the first
# code cell sets `NUMBA_ENABLE_CUDASIM=1`. It is exact but slow (about 0.2 ms per thread),
# so every shape in this lesson is tiny. On a machine with an NVIDIA GPU, set the variable
# to `"0"` (before starting the kernel) and the same cells run on the device.
#
# Read along in `minieffnet/ops/depthwise_cuda.py`; lesson 03 derives the operation itself.

# %%
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")   # "0" on a machine with a CUDA GPU

import numpy as np                                    # noqa: E402  (after the variable)
from numba import config as numba_config              # noqa: E402
from numba import cuda                                # noqa: E402

import minieffnet as me                               # noqa: E402
from minieffnet.ops import depthwise_cuda as dcuda    # noqa: E402

SIMULATOR = bool(numba_config.ENABLE_CUDASIM)
print("CUDA simulator" if SIMULATOR else "real GPU", "| cuda.is_available():", cuda.is_available())
assert cuda.is_available()
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. One thread per output
#
# A kernel is a function that *every* thread runs. A launch `kernel[blocks, threads](...)`
# starts `blocks × threads` copies; each finds out which one it is from
# `cuda.blockIdx`, `cuda.blockDim` and `cuda.threadIdx` (or `cuda.grid(d)`, which combines
# them into a global index) and computes the output element that index names.
#
# We start with a single channel: out = depthwise conv of an $H\times W$ image with a
# $k\times k$ filter, zero padding $p = k // 2$ ("same size"). First the spec in NumPy:

# %%
def conv_plane_spec(x, w):
    """One channel: x (H, W), w (k, k) -> (H, W), zero padding k // 2, stride 1."""
    k = w.shape[0]
    xp = np.pad(x, k // 2)
    H, W = x.shape
    return np.array([[np.sum(xp[i:i + k, j:j + k] * w) for j in range(W)] for i in range(H)])


# %% [markdown]
# Then the kernel. Thread `(i, j)` computes `out[i, j]`. We launch a whole number of
# blocks of 4×4 threads, so a 6×6 output needs 2×2 blocks = 8×8 threads: 28 of them
# have no output. Without the **guard** `if i < H and j < W` they would write past the end
# of `out` — on a GPU that is silent memory corruption (or a crash much later).

# %%
@cuda.jit
def conv_plane_kernel(x, w, out):
    i, j = cuda.grid(2)                 # = blockIdx * blockDim + threadIdx, per axis
    H, W = out.shape
    k = w.shape[0]
    if i < H and j < W:                 # the bounds guard
        acc = 0.0
        for ky in range(k):
            for kx in range(k):
                iy, ix = i - k // 2 + ky, j - k // 2 + kx
                if 0 <= iy < H and 0 <= ix < W:      # zero padding: skip outside taps
                    acc += w[ky, kx] * x[iy, ix]
        out[i, j] = acc


x_plane = rng.standard_normal((6, 6))
w_plane = rng.standard_normal((3, 3))
out_plane = np.zeros((6, 6))
threads = (4, 4)
blocks = ((6 + threads[0] - 1) // threads[0], (6 + threads[1] - 1) // threads[1])
conv_plane_kernel[blocks, threads](x_plane, w_plane, out_plane)   # NumPy in: copied both ways
print(f"launched {blocks} blocks of {threads} threads for a 6x6 output")
print(me.compare("kernel vs spec", out_plane, conv_plane_spec(x_plane, w_plane)))
assert np.allclose(out_plane, conv_plane_spec(x_plane, w_plane), rtol=1e-12, atol=1e-12)

# %% [markdown]
# The same check on the library's CPU op (a channel is one `(1, 1, H, W)` slice; its
# default `"symmetric"` padding is our $k // 2$):

# %%
cpu_plane, _ = me.ops.depthwise_conv2d_forward(x_plane[None, None], w_plane[None, None])
print(me.compare("spec vs CPU op", conv_plane_spec(x_plane, w_plane), cpu_plane[0, 0]))
assert np.allclose(conv_plane_spec(x_plane, w_plane), cpu_plane[0, 0], rtol=1e-12, atol=1e-12)

# %% [markdown]
# The simulator checks every index, so it *shows* what the guard prevents: the same kernel
# without it raises an `IndexError` from a thread with no output. (On a real GPU this cell
# is skipped — there the bad write would not be reported.)

# %%
@cuda.jit
def conv_plane_unguarded(x, w, out):
    i, j = cuda.grid(2)
    H, W = out.shape
    k = w.shape[0]
    acc = 0.0
    for ky in range(k):
        for kx in range(k):
            iy, ix = i - k // 2 + ky, j - k // 2 + kx
            if 0 <= iy < H and 0 <= ix < W:
                acc += w[ky, kx] * x[iy, ix]
    out[i, j] = acc                     # i or j may be 6 or 7 here


if SIMULATOR:
    try:
        conv_plane_unguarded[blocks, threads](x_plane, w_plane, np.zeros((6, 6)))
        raised = None
    except Exception as e:                # noqa: BLE001  (the simulator wraps the IndexError)
        raised = e
    print("unguarded launch:", type(raised).__name__, str(raised).splitlines()[0][:100])
    assert raised is not None

# %% [markdown]
# The library's `_forward_naive_kernel` is this kernel for the full `(N, C, H, W)` tensor:
# a 1-D grid over all `N·C·Ho·Wo` outputs (128 threads a block), the flat index `i` split
# back into `(n, c, oy, ox)`, the guard `if i >= N*C*Ho*Wo: return`, any stride and
# padding.
#
# ## 2. Why tile: shared memory and the halo
#
# Each naive thread reads $k^2$ values of x from *global* memory (the GPU's DRAM, hundreds
# of cycles away), and its neighbours read almost the same ones. The tiled kernel gives a
# block of 16×16 threads one 16×16 tile of one channel's output and proceeds in two phases:
#
# 1. **load** — all 256 threads together copy the input rows and columns the tile needs
#    into a `cuda.shared.array` (fast on-chip memory shared by the block): the tile *plus a
#    halo* of $k-1$ extra rows and columns, i.e. $(16-1)\cdot s + k$ per side for stride $s$,
#    with zeros where the halo falls into the padding; and the channel's $k\times k$ filter;
# 2. `cuda.syncthreads()` — a **barrier**: no thread continues until every thread of the
#    block has arrived, so the whole tile is in shared memory before anyone reads it;
# 3. **compute** — each thread reads its $k^2$ operands from shared memory, and only threads
#    whose output lies inside the image store it.
#
# Global reads of x per output fall from $k^2$ to about $(15s + k)^2 / 256$:

# %%
for k in (3, 5):
    for s in (1, 2):
        span = (dcuda._TILE - 1) * s + k
        print(f"k={k} stride={s}: naive {k * k:2d} loads/output, tiled {span}x{span} patch "
              f"= {span * span / dcuda._TILE ** 2:.2f} loads/output")
assert dcuda._PATCH >= (dcuda._TILE - 1) * 2 + 5     # the shared array fits k=5, stride 2

# %% [markdown]
# **The barrier rule.** `cuda.syncthreads()` waits for *all* threads of the block. If it
# stood inside `if oy < Ho and ox < Wo:` — or after an early `return` for the threads
# outside the image, as the naive kernel does — the threads of an edge tile that skip it
# never arrive: the block deadlocks, or on some hardware silently continues with a
# half-loaded tile. So the library's kernel lets *every* thread help with the load and
# reach the barrier, and applies the bounds guard only to the final store:
#
# ```python
# _load_patch(x, n, c, oy0 * stride - pt, ox0 * stride - pl, span, span, patch, tid)
# _load_filter(w, c, k, wk, tid)
# cuda.syncthreads()              # every thread gets here: nobody returned early
# oy, ox = oy0 + ty, ox0 + tx
# if oy < Ho and ox < Wo:         # the guard, after the barrier
#     ...
# ```
#
# The same rule governs the weight-gradient kernel `_dw_reduce_kernel`: a tree reduction in
# shared memory halves the number of active threads each round (`if tid < half`), but the
# `syncthreads()` of each round sits *outside* that `if`.
#
# Here is the idea in one dimension, small enough to read in full: a 1-D convolution with
# a 3-tap filter, blocks of 8 threads, a shared tile of 8 + 2 halo values.

# %%
TPB, K1 = 8, 3


@cuda.jit
def conv1d_tiled(x, w, out):
    tile = cuda.shared.array(TPB + K1 - 1, dtype=np.float64)
    t = cuda.threadIdx.x
    i = cuda.blockIdx.x * TPB + t                # this thread's output
    start = cuda.blockIdx.x * TPB - K1 // 2      # first input the block needs (padding 1)
    # load: TPB + K1 - 1 values with TPB threads -> a strided loop; zeros outside x
    for j in range(t, TPB + K1 - 1, TPB):
        src = start + j
        tile[j] = x[src] if 0 <= src < x.shape[0] else 0.0
    cuda.syncthreads()                           # reached by every thread
    if i < out.shape[0]:                         # guard only the store
        acc = 0.0
        for kk in range(K1):
            acc += w[kk] * tile[t + kk]
        out[i] = acc


def conv1d_spec(x, w):
    xp = np.pad(x, K1 // 2)
    return np.array([np.dot(xp[i:i + K1], w) for i in range(len(x))])


x1 = rng.standard_normal(19)                     # not a multiple of TPB: 3 blocks, 5 idle threads
w1 = rng.standard_normal(K1)
out1 = np.zeros_like(x1)
conv1d_tiled[(len(x1) + TPB - 1) // TPB, TPB](x1, w1, out1)
print(me.compare("1-D tiled vs spec", out1, conv1d_spec(x1, w1)))
assert np.allclose(out1, conv1d_spec(x1, w1), rtol=1e-12, atol=1e-12)

# %% [markdown]
# ## 3. The library's kernels behind the public op
#
# `"cuda"` is one of minieffnet's backends (lesson 00). Under `me.use_backend("cuda")` the
# same `me.ops.depthwise_conv2d_forward` / `_backward` copy their NumPy arguments to the
# device, launch the tiled kernels and copy the results back; the cache holds the same plain
# arrays as on the CPU, so a forward on the GPU may be followed by a backward on the CPU.
# The other ops have no CUDA kernels and run their Numba path under `"cuda"`, which is why
# `with me.use_backend("cuda"): model(x)` runs a whole network.
#
# To choose the kernels, and to keep arrays on the GPU between calls, the kernel module has
# device entry points: `dcuda.depthwise_conv2d_forward_device(x_d, w_d, stride, padding,
# method)` takes `cuda.to_device` arrays and returns `(out_d, cache)`, and
# `dcuda.depthwise_conv2d_backward_device(dout_d, cache)` returns `(dx_d, dw_d)`, all on the
# device; `method` is `"tiled"` or `"naive"`. The tiled forward launches one block per
# (sample, channel, tile): a grid of `(N·C, tiles)` blocks of 16×16 threads. With N = 1,
# C = 2 and a 6×6 image that is 2 blocks and 512 threads — about 0.1 s in the simulator.
#
# We test the public op under `"cuda"` and both methods on device arrays, both paddings,
# strides 1 and 2 and kernels 3 and 5 in float64, where the only difference from the CPU op
# is the order of the additions.

# %%
def on_device(x, w, stride, padding, dout, method):
    """Forward and backward through the device entry points, results copied back."""
    out_d, cache_d = dcuda.depthwise_conv2d_forward_device(
        cuda.to_device(x), cuda.to_device(w), stride, padding, method)
    dx_d, dw_d = dcuda.depthwise_conv2d_backward_device(cuda.to_device(dout), cache_d)
    return out_d.copy_to_host(), dx_d.copy_to_host(), dw_d.copy_to_host()


N, C, H, W = 1, 2, 6, 6
x = rng.standard_normal((N, C, H, W))
cases = [(3, 1, "symmetric"), (3, 2, "same"), (5, 2, "symmetric")]
for k, stride, padding in cases:
    w = rng.standard_normal((C, 1, k, k))
    cpu, cache = me.ops.depthwise_conv2d_forward(x, w, stride, padding)
    dout = rng.standard_normal(cpu.shape)
    dx_cpu, dw_cpu = me.ops.depthwise_conv2d_backward(dout, cache)
    with me.use_backend("cuda"):
        gpu, gpu_cache = me.ops.depthwise_conv2d_forward(x, w, stride, padding)
        results = {"op/cuda": (gpu, *me.ops.depthwise_conv2d_backward(dout, gpu_cache))}
    for method in dcuda.METHODS:
        results[method] = on_device(x, w, stride, padding, dout, method)
    for route, (out, dx, dw) in results.items():
        tag = f"k={k} s={stride} {padding:<9} {route:<7}"
        print(me.compare(f"{tag} out", out, cpu))
        print(me.compare(f"{tag} dx ", dx, dx_cpu))
        print(me.compare(f"{tag} dw ", dw, dw_cpu))
        assert out.shape == cpu.shape and dx.shape == x.shape and dw.shape == w.shape
        for got, want in ((out, cpu), (dx, dx_cpu), (dw, dw_cpu)):
            assert me.rel_error(got, want) < 1e-12, tag

# %% [markdown]
# float32 works too (the kernels accumulate in the input's precision), and under `"cuda"`
# the op refuses what it refuses on the CPU (the checks run before a backend is picked),
# for example a filter with the wrong number of channels:

# %%
x32 = x.astype(np.float32)
w32 = rng.standard_normal((C, 1, 3, 3)).astype(np.float32)
with me.use_backend("cuda"):
    out32, _ = me.ops.depthwise_conv2d_forward(x32, w32)
cpu32, _ = me.ops.depthwise_conv2d_forward(x32, w32)
print(me.compare("float32 out", out32, cpu32, rtol=1e-5, atol=1e-6))
assert out32.dtype == np.float32 and np.allclose(out32, cpu32, rtol=1e-5, atol=1e-6)
try:
    with me.use_backend("cuda"):
        me.ops.depthwise_conv2d_forward(x, rng.standard_normal((C + 1, 1, 3, 3)))
    refused = None
except ValueError as e:
    refused = e
print("refused:", refused)
assert refused is not None

# %% [markdown]
# On a real GPU the tiled kernel pays off only at sizes the simulator cannot run
# (EfficientNet's early layers: N·C in the thousands, 112×112 planes); time
# `depthwise_conv2d_forward_device` there, on `cuda.to_device` arrays, with
# `cuda.synchronize()` before stopping the clock.
#
# ## Exercises
#
# 1. **Count the idle threads.** For the tiled forward on `(N, C, H, W) = (2, 3, 20, 20)`,
#    3×3, stride 1, compute `tiled_threads` (all threads launched: blocks × 256) and
#    `tiled_idle` (threads whose output lies outside the image and only help load).
# 2. **The input gradient, one thread per input pixel.** Write `dx_plane_kernel(dout, w, dx)`
#    for one channel, stride 1, padding k // 2: thread `(i, j)` *gathers*
#    $dx_{ij} = \sum_{k_y,k_x} w_{k_y k_x}\, dout_{i + p - k_y,\; j + p - k_x}$ over the taps
#    whose output index is inside the image. (Gathering lets each thread write only its own
#    element: no atomic additions.) Check it against the CPU op's `dx`.

# %%
# --- solution (replace with your own) ---------------------------------------------------
Ne, Ce, He, We = 2, 3, 20, 20
tiles_per_plane = ((He + 15) // 16) * ((We + 15) // 16)
tiled_threads = Ne * Ce * tiles_per_plane * 256
tiled_idle = tiled_threads - Ne * Ce * He * We


@cuda.jit
def dx_plane_kernel(dout, w, dx):
    i, j = cuda.grid(2)
    H, W = dx.shape
    k = w.shape[0]
    p = k // 2
    if i < H and j < W:
        acc = 0.0
        for ky in range(k):
            for kx in range(k):
                oy, ox = i + p - ky, j + p - kx
                if 0 <= oy < H and 0 <= ox < W:
                    acc += w[ky, kx] * dout[oy, ox]
        dx[i, j] = acc


# %%
# --- check ---------------------------------------------------------------------------------
grid_ex, block_ex = dcuda._tiles(Ne, Ce, He, We)
assert tiled_threads == grid_ex[0] * grid_ex[1] * block_ex[0] * block_ex[1] == 6 * 4 * 256
assert tiled_idle == 6 * (32 * 32 - 20 * 20)
print(f"{tiled_threads} threads, {tiled_idle} idle ({tiled_idle / tiled_threads:.0%})")

dout_plane = rng.standard_normal((6, 6))
dx_mine = np.zeros((6, 6))
dx_plane_kernel[blocks, threads](dout_plane, w_plane, dx_mine)
_, cache = me.ops.depthwise_conv2d_forward(x_plane[None, None], w_plane[None, None])
dx_ref, _ = me.ops.depthwise_conv2d_backward(dout_plane[None, None], cache)
print(me.compare("dx kernel vs CPU op", dx_mine, dx_ref[0, 0]))
assert np.allclose(dx_mine, dx_ref[0, 0], rtol=1e-12, atol=1e-12)
print("all exercises pass")
