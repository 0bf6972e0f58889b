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
# # Lesson 11 — FLOPs versus time: where a B0 step really goes
#
# **What you will learn**
#
# * that the paper's cost measure, multiply-adds ("FLOPs"), is not time: we time every op of
#   EfficientNet-B0 on this machine, group them by kind, and plot each kind's share of the
#   multiply-adds against its share of the time;
# * **arithmetic intensity** — floating-point operations per byte of memory traffic — for
#   depthwise and pointwise convolution, BatchNorm, swish and squeeze-excite, derived from
#   their shapes;
# * the **roofline** model (Williams, Waterman & Patterson, 2009): an op cannot run faster
#   than the peak compute rate, nor faster than the memory bandwidth times its intensity; we
#   measure both ceilings here (a large matrix product, a large NumPy copy) and place every
#   B0 op under them;
# * what the library's **fused** ops buy: BatchNorm with swish in one pass (training), and
#   depthwise conv → BatchNorm → swish in one pass (evaluation) — fewer passes over memory,
#   the same numbers.
#
# The paper (Tan & Le 2019, §4 and Table 2) compares networks by FLOPs, and says itself that
# FLOPs are only a proxy (its follow-up, EfficientNetV2, replaces depthwise convolutions in
# the early stages for exactly the reason this lesson measures). Read along in
# `minieffnet/scaling.py` (`network_layers`) and `minieffnet/ops/registry.py` (`OPS`).
#
# **About the numbers.** Everything is timed on the machine that runs the notebook, at a
# small size (batch 8, 64×64 inputs) so that the lesson takes seconds. On a shared or busy
# machine single timings move by tens of percent; we take the best of several runs, and the
# asserts check only what the arithmetic guarantees (counts, intensities, that the fused ops
# compute the same thing), never a speed. Your ratios will differ from any quoted in the
# text; the ordering is what to look at.

# %%
import time
from collections import defaultdict

import matplotlib.pyplot as plt
import numpy as np

import minieffnet as me
from minieffnet.timing import best_time
from minieffnet.ops.registry import OPS
from minieffnet.scaling import network_layers

rng = np.random.default_rng(0)
SPECS = {spec.name: spec for spec in OPS}
DTYPE = np.float32
BYTES = np.dtype(DTYPE).itemsize          # 4




# %% [markdown]
# ## 1. Where the multiply-adds are
#
# `network_layers(config, resolution)` lists every layer of the network in forward order,
# each with its input and output size; `PlacedLayer.flops` is its multiply-adds, the paper's
# count: convolutions and fully connected layers only. We use the paper's B0 (the
# `imagenet` preset) at 64×64, batch 8.

# %%
cfg = me.make_config("b0")
R, N = 64, 8
layers = network_layers(cfg, R)
total_macs = sum(p.flops for p in layers)
assert total_macs == me.count_flops(cfg, R)
print(f"B0 at {R}x{R}: {len(layers)} layers, {total_macs / 1e6:.1f} M multiply-adds per image")


def kind_of(p):
    """The op kind a placed layer's main op belongs to."""
    if p.layer.kind == "conv_bn":
        return "stem conv 3x3" if p.path == "stem" else "pointwise conv"
    return {"depthwise_bn": "depthwise conv", "squeeze_excite": "squeeze-excite",
            "pool": "pool + classifier", "linear": "pool + classifier"}.get(p.layer.kind)


macs_by_kind = defaultdict(int)
for p in layers:
    if kind_of(p):
        macs_by_kind[kind_of(p)] += p.flops
macs_by_kind["BatchNorm (+ swish)"] = 0        # not counted: "element-wise work is cheap"
for kind, m in macs_by_kind.items():
    print(f"{kind:>20}: {m / 1e6:7.2f} M  ({m / total_macs:6.1%})")
assert sum(macs_by_kind.values()) == total_macs
assert macs_by_kind["pointwise conv"] / total_macs > 0.8

# %% [markdown]
# The 1×1 (pointwise) convolutions — expand, project and head — do more than four fifths of
# the multiply-adds; the depthwise convolutions, which do the spatial work, a small share;
# squeeze-excite and the classifier almost nothing. BatchNorm and swish follow every
# convolution but are not counted at all.
#
# ## 2. Timing every op
#
# Now time them. For each layer we build inputs of its exact shape with the registry's
# `make_inputs` (the same builders that drive `minieffnet check-ops` and the benchmarks),
# and time its forward and backward — one training step's worth — with the default `numba`
# backend in float32. Each convolution is followed by its BatchNorm, which in training mode
# runs fused with the swish when the layer has one (`activation="swish"`), as the model
# runs it. The registry's shape layouts:
#
# | registry spec | shape |
# |---|---|
# | `conv2d 3x3 s2 (stem)` | (N, C_in, C_out, H, k, stride) |
# | `pointwise conv2d` | (N, C_in, C_out, H) |
# | `depthwise 3x3 s1` | (N, C, H, k, stride) — any k and stride |
# | `batchnorm2d train (+ swish)` | (N, C, H) |
# | `squeeze_excite` | (N, C, H, C_squeezed) |
# | `global_avg_pool`, `linear` | (N, C, H), (N, D, M) |

# %%
def op_calls(p):
    """(kind, registry spec, shape) of each op a placed layer runs in a training step."""
    L, H = p.layer, p.in_size[0]
    Ho = p.out_size[0]
    if L.kind == "conv_bn":
        bn = "batchnorm2d train + swish" if L.activation == "swish" else "batchnorm2d train"
        conv = (("stem conv 3x3", "conv2d 3x3 s2 (stem)", (N, 3, L.out_channels, H, 3, L.stride))
                if p.path == "stem" else
                ("pointwise conv", "pointwise conv2d", (N, L.in_channels, L.out_channels, H)))
        return [conv, ("BatchNorm (+ swish)", bn, (N, L.out_channels, Ho))]
    if L.kind == "depthwise_bn":
        return [("depthwise conv", "depthwise 3x3 s1", (N, L.in_channels, H, L.kernel, L.stride)),
                ("BatchNorm (+ swish)", "batchnorm2d train + swish", (N, L.out_channels, Ho))]
    if L.kind == "squeeze_excite":
        return [("squeeze-excite", "squeeze_excite", (N, L.in_channels, H, L.squeeze))]
    if L.kind == "pool":
        return [("pool + classifier", "global_avg_pool", (N, L.in_channels, H))]
    if L.kind == "linear":
        return [("pool + classifier", "linear", (N, L.in_channels, L.out_channels))]
    return []            # drop_connect and dropout: random masks, left out


def time_op(spec_name, shape):
    """Best forward time, best forward + backward time (seconds), and the forward output."""
    spec = SPECS[spec_name]
    inputs = spec.make_inputs(rng, shape, DTYPE)
    forward = spec.forward_at(shape)
    out, cache = forward(**inputs)
    dout = rng.standard_normal(np.shape(out)).astype(DTYPE)

    def step():
        _, c = forward(**inputs)
        spec.backward(dout, c)

    return best_time(lambda: forward(**inputs)), best_time(step, repeats=3), out


t0 = time.perf_counter()
records = []                         # one per op call: layer, kind, spec, shape, times
for p in layers:
    for kind, spec_name, shape in op_calls(p):
        t_fwd, t_step, out = time_op(spec_name, shape)
        records.append(dict(path=p.path, kind=kind, spec=spec_name, shape=shape, layer=p,
                            t_fwd=t_fwd, t_step=t_step, out_size=int(np.size(out))))
print(f"timed {len(records)} op calls in {time.perf_counter() - t0:.1f} s (including compilation)")
assert {r["kind"] for r in records} == set(macs_by_kind)

# %%
time_by_kind = defaultdict(float)
fwd_by_kind = defaultdict(float)
for r in records:
    time_by_kind[r["kind"]] += r["t_step"]
    fwd_by_kind[r["kind"]] += r["t_fwd"]
t_ops = sum(time_by_kind.values())
kinds = sorted(macs_by_kind, key=lambda k: -time_by_kind[k])
print(f"{'kind':>20} {'MACs':>7} {'time (fwd+bwd)':>15} {'ms':>7} {'fwd GFLOP/s':>12}")
for k in kinds:
    gflops = 2 * N * macs_by_kind[k] / fwd_by_kind[k] / 1e9 if macs_by_kind[k] else float("nan")
    print(f"{k:>20} {macs_by_kind[k] / total_macs:7.1%} {time_by_kind[k] / t_ops:15.1%} "
          f"{1e3 * time_by_kind[k]:7.2f} {gflops:12.1f}")
print(f"sum of the ops: {1e3 * t_ops:.1f} ms per training step of {N} images")

# %% [markdown]
# The sum of the parts against the whole: a real training step of the same model (forward,
# loss, backward) also runs the residual additions, stochastic depth, dropout, the loss, and
# Python between the layers. The difference is that overhead.

# %%
model = me.efficientnet("b0", num_classes=1000, seed=0)
model.train()
xb = rng.standard_normal((N, 3, R, R)).astype(DTYPE)
yb = np.arange(N) % 1000


def train_step():
    logits = model(xb)
    _, dlogits = me.ops.softmax_cross_entropy(logits, yb)
    model.backward(dlogits)


t_model = best_time(train_step, repeats=3)
print(f"model training step: {1e3 * t_model:.1f} ms; sum of the timed ops {1e3 * t_ops:.1f} ms "
      f"({t_ops / t_model:.0%} of it)")

# %%
fig, ax = plt.subplots(1, 2, figsize=(12, 4.2))
x_pos = np.arange(len(kinds))
ax[0].bar(x_pos - 0.2, [100 * macs_by_kind[k] / total_macs for k in kinds], 0.4,
          label="share of multiply-adds")
ax[0].bar(x_pos + 0.2, [100 * time_by_kind[k] / t_ops for k in kinds], 0.4,
          label="share of time (fwd + bwd)")
ax[0].set_xticks(x_pos, kinds, rotation=25, ha="right", fontsize=8)
ax[0].set_ylabel("%")
ax[0].legend()
ax[0].set_title(f"B0, {R}x{R}, batch {N}: FLOPs are not time")
for k in kinds:
    ax[1].scatter(100 * macs_by_kind[k] / total_macs, 100 * time_by_kind[k] / t_ops, s=60)
    ax[1].annotate(k, (100 * macs_by_kind[k] / total_macs, 100 * time_by_kind[k] / t_ops),
                   fontsize=8, xytext=(4, 4), textcoords="offset points")
ax[1].plot([0, 100], [0, 100], "k:", lw=1)
ax[1].set_xlabel("share of multiply-adds (%)")
ax[1].set_ylabel("share of time (%)")
ax[1].set_title("on the diagonal: time proportional to FLOPs")
fig.tight_layout()

# %% [markdown]
# What to see (the exact numbers depend on the machine and its load): the pointwise
# convolutions do most of the multiply-adds but take a much smaller share of the time;
# depthwise convolution, BatchNorm and swish take far more time than their share of
# multiply-adds (BatchNorm's share of multiply-adds is zero). A network's FLOPs predict its
# time only if every op runs at the same rate, and these ops run at rates that differ by an
# order of magnitude — the next section says why.
#
# ## 3. Arithmetic intensity
#
# An op that performs $F$ floating-point operations and must move at least $Q$ bytes between
# memory and the cores has **arithmetic intensity** $I = F / Q$ (FLOPs per byte). We count
# $F$ as 2 per multiply-add, and for $Q$ the compulsory traffic of the forward pass in
# float32: every input and weight read once, every output written once. For an
# $N\times C\times H\times W$ tensor write $S = NCHW$; $k$ is the kernel, $s$ the stride:
#
# | op | FLOPs $F$ | bytes $Q$ | intensity, large $H W$ |
# |---|---|---|---|
# | depthwise $k\times k$ | $2\,k^2\,N C H_o W_o$ | $4\,(S_\text{in} + S_\text{out} + C k^2)$ | $\dfrac{2k^2}{4(s^2 + 1)}$: 2.25 for 3×3, 6.25 for 5×5 (stride 1) |
# | pointwise $C_\text{in}\to C_\text{out}$ | $2\,N H W\, C_\text{in} C_\text{out}$ | $4\,(N H W (C_\text{in} + C_\text{out}) + C_\text{in} C_\text{out})$ | $\dfrac{C_\text{in} C_\text{out}}{2(C_\text{in} + C_\text{out})}$: 10 for 24 → 144 |
# | BatchNorm (training) + swish | $\approx 9\,S$ | $8\,S$ | ≈ 1.1 |
# | swish alone | $\approx 4\,S$ | $8\,S$ | 0.5 |
# | squeeze-excite | $\approx 2\,S + 4 N C C_r$ | $12\,S$ (pool reads $x$, rescale reads and writes) | ≈ 0.17 |
#
# The element-wise counts are a convention: BatchNorm's statistics cost about 3 operations
# per element (a sum and a sum of squares), the normalisation $a x + b$ 2; swish
# $x / (1 + e^{-x})$ about 4 if an exponential counts as one operation (it costs more like
# 10–20 instructions, so swish is really more compute-heavy than this says). Pointwise
# convolutions do $C_\text{out}$ multiply-adds per input value read, depthwise only $k^2$,
# element-wise ops one or two: that, and not the FLOP count, decides which resource limits
# them.

# %%
def intensity(r):
    """(FLOPs, bytes) of one op call's forward, by the table above."""
    shape, spec = r["shape"], r["spec"]
    out = r["out_size"]
    if spec.startswith("depthwise"):
        n, c, h, k, _ = shape
        return 2 * k * k * out, BYTES * (n * c * h * h + out + c * k * k)
    if spec == "pointwise conv2d":
        n, cin, cout, h = shape
        return 2 * n * h * h * cin * cout, BYTES * (n * h * h * (cin + cout) + cin * cout)
    if spec.startswith("conv2d"):
        n, cin, cout, h, k, _ = shape
        return 2 * k * k * cin * out, BYTES * (n * cin * h * h + out + cout * cin * k * k)
    if spec.startswith("batchnorm2d"):
        return (9 if spec.endswith("swish") else 5) * out, 2 * BYTES * out
    if spec == "squeeze_excite":
        n, c, h, cr = shape
        return 2 * out + 4 * n * c * cr, 3 * BYTES * out
    if spec == "global_avg_pool":
        n, c, h = shape
        return n * c * h * h, BYTES * (n * c * h * h + out)
    if spec == "linear":
        n, d, m = shape
        return 2 * n * d * m, BYTES * (n * d + d * m + out)
    raise ValueError(spec)


for r in records:
    r["flops"], r["bytes"] = intensity(r)
    r["ai"] = r["flops"] / r["bytes"]
    r["gflops"] = r["flops"] / r["t_fwd"] / 1e9


def ai_of(path, kind):
    return next(r["ai"] for r in records if r["path"] == path and r["kind"] == kind)


ai = {
    "depthwise 3x3 s1 (blocks.2)": ai_of("blocks.2.depthwise", "depthwise conv"),
    "depthwise 5x5 s1 (blocks.4)": ai_of("blocks.4.depthwise", "depthwise conv"),
    "pointwise 24->144 (blocks.2.expand)": ai_of("blocks.2.expand", "pointwise conv"),
    "pointwise 320->1280 (head)": ai_of("head", "pointwise conv"),
    "BatchNorm + swish (blocks.2.expand)": ai_of("blocks.2.expand", "BatchNorm (+ swish)"),
    "squeeze-excite (blocks.2)": ai_of("blocks.2.se", "squeeze-excite"),
}
for name, v in ai.items():
    print(f"{name:>38}: {v:6.2f} FLOP/byte")
assert ai["BatchNorm + swish (blocks.2.expand)"] < ai["depthwise 3x3 s1 (blocks.2)"] \
    < ai["depthwise 5x5 s1 (blocks.4)"] < ai["pointwise 24->144 (blocks.2.expand)"]
assert abs(ai["depthwise 3x3 s1 (blocks.2)"] - 2 * 9 / (4 * 2)) < 0.1   # 2.25, plus weights
assert ai["squeeze-excite (blocks.2)"] < 0.5

# %% [markdown]
# ## 4. The roofline of this machine
#
# Two ceilings bound an op's rate $P$ (FLOP/s): the cores' peak compute $P_\text{peak}$, and
# the memory system, which delivers at most $B$ bytes per second, so
#
# $$P \le \min\bigl(P_\text{peak},\; B \cdot I\bigr).$$
#
# On a log–log plot of $P$ against $I$ that is a slanted line (memory-bound) meeting a flat
# one (compute-bound) at the **ridge point** $I^* = P_\text{peak} / B$. We measure both:
#
# * $B$: a NumPy copy `np.copyto(dst, src)` reads and writes each byte once, so
#   $B = 2\cdot\text{size} / t$. Small arrays stay in the caches, large ones must come from
#   DRAM, so we sweep the size and draw two rooflines: one for data in the caches (a 1 MB
#   copy), one for DRAM (the largest copy);
# * $P_\text{peak}$: a large float32 matrix product (BLAS), $2n^3$ FLOPs. minieffnet limits
#   OpenBLAS to **one** thread (see `minieffnet/_threads.py`: Numba supplies the parallelism,
#   and the two thread pools fight otherwise), so this is one core's peak, the ceiling of the
#   library's pointwise convolutions; the Numba kernels may use every core.

# %%
sizes_mb = [0.25, 1, 4, 16, 64, 256]
bandwidth = {}
for mb in sizes_mb:
    src = np.ones(int(mb * 2**20) // BYTES, dtype=DTYPE)
    dst = np.empty_like(src)
    t = best_time(lambda: np.copyto(dst, src), repeats=5 if mb < 64 else 3)
    bandwidth[mb] = 2 * src.nbytes / t
    print(f"copy {mb:7.2f} MB: {bandwidth[mb] / 1e9:6.1f} GB/s")
del src, dst
B_cache, B_dram = bandwidth[1], bandwidth[sizes_mb[-1]]

n_mm = 1024
a_mm = rng.standard_normal((n_mm, n_mm)).astype(DTYPE)
b_mm = rng.standard_normal((n_mm, n_mm)).astype(DTYPE)
P_peak = 2 * n_mm ** 3 / best_time(lambda: a_mm @ b_mm, repeats=3)
print(f"peak (one-thread BLAS, {n_mm}^3 float32 matmul): {P_peak / 1e9:.1f} GFLOP/s")
print(f"ridge point: {P_peak / B_dram:.1f} FLOP/byte from DRAM, {P_peak / B_cache:.1f} from cache")
assert all(b > 0 for b in bandwidth.values()) and P_peak > 0

# %% [markdown]
# Every forward op of the timed step, as one point at its intensity and its measured rate,
# under the two rooflines:

# %%
fig, ax = plt.subplots(figsize=(8, 5.2))
ii = np.logspace(-1.2, 2.5, 200)
ax.loglog(ii, np.minimum(P_peak, B_dram * ii) / 1e9, "k-", lw=2,
          label=f"roofline, DRAM ({B_dram / 1e9:.0f} GB/s)")
ax.loglog(ii, np.minimum(P_peak, B_cache * ii) / 1e9, "k--", lw=1,
          label=f"roofline, cache ({B_cache / 1e9:.0f} GB/s)")
colors = dict(zip(kinds, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
for k in kinds:
    pts = [r for r in records if r["kind"] == k]
    ax.scatter([r["ai"] for r in pts], [r["gflops"] for r in pts], s=18, color=colors[k],
               label=k, alpha=0.8)
ax.set_xlabel("arithmetic intensity (FLOP / byte)")
ax.set_ylabel("measured GFLOP/s (forward)")
ax.set_title(f"B0 ops at {R}x{R}, batch {N}, float32, under this machine's roofline")
ax.legend(fontsize=7, loc="lower right")
fig.tight_layout()

# %% [markdown]
# How to read it:
#
# * **Element-wise ops** (BatchNorm, swish, squeeze-excite's pooling and rescale) sit far to
#   the left: at ≈ 1 FLOP per byte even the full memory bandwidth buys only a few GFLOP/s.
#   Making their arithmetic faster would change nothing; only moving fewer bytes helps.
# * **Depthwise convolutions** sit at 2–6 FLOP/byte, near or left of the ridge point: they
#   are memory-bound too, or close to it, and their irregular access (a window per output)
#   keeps them below the line.
# * **Pointwise convolutions** have the highest intensity and the highest rates, within a
#   small factor of the compute ceiling: they are the only ops here that the peak FLOP rate
#   limits. The late ones at 2×2 or 4×4 maps do worse: the weights dominate their bytes
#   (the head reads 320 × 1280 weights for a few dozen pixels per image) and the matrices
#   are too small for BLAS to reach its peak.
# * Points **far below both lines** are small tensors of the late stages (a BatchNorm over
#   8 × 1152 × 2 × 2 values moves 0.15 MB, 6 µs at DRAM speed): there the fixed cost of a
#   call — Python, argument checks, waking the parallel kernel's threads, tens of
#   microseconds — is larger than the work. No roofline describes that; only fewer, larger
#   calls (a bigger batch, fusion) help.
# * Points **above** the DRAM roofline are not a mistake: at batch 8 and 64 px most tensors
#   are a few megabytes and stay in the caches between ops, which the cache roofline bounds.
#   The roofline is a ceiling for a level of the memory hierarchy, not a prediction.
#
# This is why EfficientNet's FLOPs understate its time on CPUs and GPUs alike: a large share
# of its work is depthwise and element-wise, the kinds with little arithmetic per byte.
#
# ## 5. What fusion buys
#
# If the cost of an element-wise op is its memory traffic, two of them in one pass cost
# about one pass. The library fuses in two places (lesson 02 derives the maths):
#
# 1. **Training: BatchNorm + swish** (`batchnorm2d_forward(..., activation="swish")`). The
#    separate ops write BatchNorm's output $y$ and read it back for swish; the fused kernel
#    applies swish before the store. The backward does the same in reverse.
# 2. **Evaluation: depthwise conv → BatchNorm → swish** (`depthwise_bn_eval_forward`). In
#    evaluation BatchNorm is a fixed per-channel map $a_c x + b_c$, so the depthwise kernel
#    can apply it and swish to each output as it computes it: one read of $x$, one write of
#    the result, instead of three passes.
#
# We check that the fused and separate versions agree, count the passes over memory, and
# time both on the shape of B0's first expanded layer at this size (batch 16 here, so that
# the tensors are larger than one core's cache).

# %%
Nf, Cf, Hf = 16, 96, 32
x = rng.standard_normal((Nf, Cf, Hf, Hf)).astype(DTYPE)
gamma = (1 + 0.1 * rng.standard_normal(Cf)).astype(DTYPE)
beta = (0.1 * rng.standard_normal(Cf)).astype(DTYPE)
dout = rng.standard_normal(x.shape).astype(DTYPE)


def stats():
    return np.zeros(Cf, DTYPE), np.ones(Cf, DTYPE)


def bn_swish_separate():
    y, c_bn = me.ops.batchnorm2d_forward(x, gamma, beta, *stats(), training=True)
    z, c_sw = me.ops.swish_forward(y)
    dy = me.ops.swish_backward(dout, c_sw)
    return z, me.ops.batchnorm2d_backward(dy, c_bn)


def bn_swish_fused():
    z, c = me.ops.batchnorm2d_forward(x, gamma, beta, *stats(), training=True,
                                      activation="swish")
    return z, me.ops.batchnorm2d_backward(dout, c)


z_sep, g_sep = bn_swish_separate()
z_fus, g_fus = bn_swish_fused()
print(me.compare("BN+swish out", z_fus, z_sep, rtol=1e-5, atol=1e-5))
for name, a, b in zip(("dx", "dgamma", "dbeta"), g_fus, g_sep):
    print(me.compare(f"BN+swish {name}", a, b, rtol=1e-4, atol=1e-4))
    assert np.allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max()), name
assert np.allclose(z_fus, z_sep, rtol=1e-5, atol=1e-5)
t_sep, t_fus = best_time(bn_swish_separate), best_time(bn_swish_fused)
print(f"training BN + swish, forward + backward on {x.shape}: separate {1e3 * t_sep:.2f} ms, "
      f"fused {1e3 * t_fus:.2f} ms ({t_sep / t_fus:.2f}x)")

# %%
k = 3
w_dw = rng.standard_normal((Cf, 1, k, k)).astype(DTYPE)
rmean = (0.1 * rng.standard_normal(Cf)).astype(DTYPE)
rvar = rng.uniform(0.5, 2, Cf).astype(DTYPE)


def eval_separate():
    y, _ = me.ops.depthwise_conv2d_forward(x, w_dw)
    y, _ = me.ops.batchnorm2d_forward(y, gamma, beta, rmean, rvar, training=False)
    return me.ops.swish_forward(y)[0]


def eval_fused():
    return me.ops.depthwise_bn_eval_forward(x, w_dw, gamma, beta, rmean, rvar)[0]


print(me.compare("dw->BN->swish (eval)", eval_fused(), eval_separate(), rtol=1e-5, atol=1e-5))
assert np.allclose(eval_fused(), eval_separate(), rtol=1e-5, atol=1e-5)
t_sep_e, t_fus_e = best_time(eval_separate), best_time(eval_fused)
S = x.size
passes = {"separate": 6, "fused": 2}             # tensor reads + writes, forward
print(f"evaluation dw -> BN -> swish on {x.shape}: separate {1e3 * t_sep_e:.2f} ms "
      f"({passes['separate']} passes, {passes['separate'] * BYTES * S / 1e6:.0f} MB), "
      f"fused {1e3 * t_fus_e:.2f} ms ({passes['fused']} passes, "
      f"{passes['fused'] * BYTES * S / 1e6:.0f} MB): {t_sep_e / t_fus_e:.2f}x")
print(f"bandwidth-bound estimate at {B_dram / 1e9:.0f} GB/s: separate "
      f"{1e3 * passes['separate'] * BYTES * S / B_dram:.2f} ms, fused "
      f"{1e3 * passes['fused'] * BYTES * S / B_dram:.2f} ms")

# %% [markdown]
# The passes are counted on the tensor of $S = N C H W$ values: separately, the depthwise
# conv reads $x$ and writes $y_1$, BatchNorm reads $y_1$ and writes $y_2$, swish reads $y_2$
# and writes the output — six passes; fused, one read and one write. The fused version
# should come out faster, by less than the 3× the passes suggest (the depthwise arithmetic
# itself does not shrink, and small tensors are partly served from cache); on a loaded
# machine a single comparison can even come out the other way, so rerun the cell before
# drawing conclusions. The training fusion saves less: one write and one read of $y$ out of
# about five passes forward and as many backward.
#
# On a GPU the same reasoning holds with different constants: an H100 has ~3 TB/s and ~60
# TFLOP/s of float32, a ridge point near 20 FLOP/byte, so depthwise and element-wise ops are
# even more strongly memory-bound there. Lesson 09 measures the depthwise kernel's GB/s on a
# GPU when one is available.
#
# ## Exercises
#
# 1. **The 5×5 stride-2 layers.** B0's `blocks.3.depthwise` is a 5×5 depthwise conv with
#    stride 2. From its record, compute its arithmetic intensity `ai_5x5_s2` by the table's
#    formula (FLOPs over compulsory bytes) and compare it with the 5×5 stride-1 layer's:
#    why is it about 2.5 times lower, when stride 2 does four times fewer multiply-adds per
#    input value?
# 2. **A bandwidth-bound prediction.** Predict the forward time `t_pred` (seconds) of the
#    fused BatchNorm + swish on `blocks.2.expand`'s output from the DRAM bandwidth you
#    measured, assuming it only moves its compulsory bytes, and compute the ratio `ratio`
#    of the measured forward time to it.

# %%
# --- solution (replace with your own) ---------------------------------------------------
rec = next(r for r in records if r["path"] == "blocks.3.depthwise" and r["kind"] == "depthwise conv")
n_, c_, h_, k_, s_ = rec["shape"]
ho_ = -(-h_ // s_)                                          # ceil(h / s): symmetric padding
ai_5x5_s2 = 2 * k_ * k_ * n_ * c_ * ho_ * ho_ / (BYTES * (n_ * c_ * h_ * h_ + n_ * c_ * ho_ * ho_ + c_ * k_ * k_))
# With stride 2 the output has a quarter of the input's values, so a quarter of the
# multiply-adds are done on the same input bytes; but the output's bytes shrink too, from one
# input-sized tensor to a quarter of one. Per input value: 2k^2/s^2 FLOPs over
# BYTES * (1 + 1/s^2) bytes = 2k^2 / (BYTES * (s^2 + 1)), 6.25 for k = 5, s = 1 and 2.5 for
# s = 2: 2.5x lower, not 4x (the filter's bytes are negligible).
bn_rec = next(r for r in records if r["path"] == "blocks.2.expand" and r["kind"] == "BatchNorm (+ swish)")
t_pred = 2 * BYTES * bn_rec["out_size"] / B_dram
ratio = bn_rec["t_fwd"] / t_pred

# %%
# --- check ---------------------------------------------------------------------------------
print(f"5x5 stride 2: {ai_5x5_s2:.2f} FLOP/byte (record {rec['ai']:.2f}); 5x5 stride 1: "
      f"{ai['depthwise 5x5 s1 (blocks.4)']:.2f}")
assert abs(ai_5x5_s2 - rec["ai"]) < 1e-9 and 2.0 < ai_5x5_s2 < 2.6
print(f"stride 1 / stride 2: {ai['depthwise 5x5 s1 (blocks.4)'] / ai_5x5_s2:.2f}x")
assert 2.3 < ai["depthwise 5x5 s1 (blocks.4)"] / ai_5x5_s2 < 2.7        # the formula's 2.5x
print(f"BN + swish on {bn_rec['shape']}: predicted {1e6 * t_pred:.0f} us from DRAM bandwidth, "
      f"measured {1e6 * bn_rec['t_fwd']:.0f} us ({ratio:.1f}x)")
assert abs(t_pred - 8 * bn_rec["out_size"] / B_dram) < 1e-12 and ratio > 0
print("all exercises pass")
