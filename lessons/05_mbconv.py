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
# # Lesson 05 — The MBConv block and stochastic depth
#
# **What you will learn**
#
# * the layer order of EfficientNet's building block, the *mobile inverted bottleneck*
#   (MBConv): expand → depthwise → squeeze-excite → project, and why the projection has no
#   activation;
# * the residual connection, and how its backward pass simply *adds* the upstream gradient;
# * stochastic depth ("drop connect"): dropping a block's branch for a whole sample, why the
#   kept samples are scaled by $1/(1-p)$, and the linear schedule $0.2\cdot i/n$ over blocks;
# * how to check a whole block's backward — including a randomly dropped one — against
#   finite differences.
#
# **Exercise version:** `exercises/05_mbconv.ipynb` leaves the block's backward with drop
# connect and the exercises to you, with hints; the `### CHECK` cells grade them and name
# the common mistakes (see `lessons/README.md`).
#
# References: Sandler et al., *MobileNetV2: Inverted Residuals and Linear Bottlenecks*
# (CVPR 2018); Tan et al., *MnasNet* (CVPR 2019), which added squeeze-and-excitation;
# Huang et al., *Deep Networks with Stochastic Depth* (ECCV 2016); Tan & Le (2019) §5.2
# for the 0.2 rate.

# %%
import dataclasses

import matplotlib.pyplot as plt
import numpy as np

import minieffnet as me
from minieffnet.scaling import BlockSpec

rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The layer order
#
# For input $x$ with $C_\text{in}$ channels, expansion ratio $t$ and kernel $k$:
#
# ```
# x ─► [1×1 conv C_in → t·C_in ─► BN ─► swish]     "expand"      (absent when t = 1)
#   ─► k×k depthwise conv, stride s ─► BN ─► swish  "depthwise"
#   ─► squeeze-and-excitation                       "se"
#   ─► 1×1 conv t·C_in → C_out ─► BN                "project"     (no activation!)
#   ─► [stochastic depth ─► + x]                    only if s = 1 and C_in = C_out
# ```
#
# *Inverted*: a classic bottleneck (ResNet) narrows then widens; MBConv widens (×6) for the
# cheap depthwise conv and narrows again, so the residual joins the *narrow* tensors.
# *Linear bottleneck*: Sandler et al. show that a ReLU on the narrow projection destroys
# information, so the projection stays linear.
#
# A block is built from a `BlockSpec` row (lesson 06 shows where these come from) and the
# network's config (BatchNorm eps/momentum, padding):

# %%
config = me.make_config("b0")
spec = BlockSpec(expand_ratio=6, kernel=3, stride=1, in_channels=4, out_channels=4,
                 se_channels=1, drop_connect_rate=0.0, stage=1)
block = me.MBConv(spec, config, rng=rng, dtype=np.float64)
for name, module in block.named_modules():
    if name:
        print(f"{name:<16} {type(module).__name__}")
print("residual:", block.use_residual)
assert [n for n, _ in block.named_children()] == ["expand", "depthwise", "se", "project", "drop_connect"]

# %% [markdown]
# ## 2. The forward pass, from the ops
#
# We run the same computation with the ops of lessons 01–04 and this block's weights, and
# compare. (Training mode: BatchNorm uses batch statistics; we hand it *copies* of the running
# statistics, so the block's own are not updated twice.)

# %%
def bn(x, layer):
    out, _ = me.ops.batchnorm2d_forward(x, layer.weight.data, layer.bias.data,
                                        layer.running_mean.copy(), layer.running_var.copy(),
                                        training=True, momentum=layer.momentum, eps=layer.eps)
    return out


def swish(x):
    return me.ops.swish_forward(x)[0]


def mbconv_by_hand(x, block):
    h = swish(bn(me.ops.pointwise_conv2d_forward(x, block.expand[0].weight.data)[0], block.expand[1]))
    dw = block.depthwise[0]
    h = swish(bn(me.ops.depthwise_conv2d_forward(h, dw.weight.data, dw.stride, dw.padding)[0],
                 block.depthwise[1]))
    se = block.se
    h = me.ops.squeeze_excite_forward(h, se.reduce_weight.data, se.reduce_bias.data,
                                      se.expand_weight.data, se.expand_bias.data)[0]
    h = bn(me.ops.pointwise_conv2d_forward(h, block.project[0].weight.data)[0], block.project[1])
    return h + x          # residual; stochastic depth is off (rate 0)


x = rng.standard_normal((2, 4, 5, 5))
block.train()
out = block(x)
print(me.compare("MBConv out", out, mbconv_by_hand(x, block)))
assert me.rel_error(out, mbconv_by_hand(x, block)) < 1e-12
print("shape", x.shape, "->", out.shape)

# %% [markdown]
# ## 3. The backward pass and the residual
#
# The block is $y = x + F(x)$, so $\dfrac{\partial L}{\partial x} = d y + \Bigl(\dfrac{\partial
# F}{\partial x}\Bigr)^{\!\top} dy$: the residual hands the upstream gradient straight to the
# input — the "gradient highway" that lets deep networks train. Each layer's backward runs in
# reverse order, and every parameter receives its gradient.
#
# We check the whole block — input and two weight tensors — against finite differences.
# The analytic gradients come from the default (Numba) backend; the hundreds of forward passes
# of the finite differences run under the NumPy reference, which is quickest on arrays this
# small (every Numba parallel kernel pays a thread start-up cost per call). The forward
# passes of the two backends agree, so this checks the Numba backward.

# %%
dout = rng.standard_normal(out.shape)
block(x)
dx = block.backward(dout)

# the residual: dx = dout + (gradient through the branch)
branch = [block.expand, block.depthwise, block.se, block.project]
h = x
for m in branch:
    h = m.forward(h)
d = dout
for m in reversed(branch):
    d = m.backward(d)
print(me.compare("dx - dout", dx - dout, d))
assert np.allclose(dx - dout, d, rtol=1e-12, atol=1e-14)

with me.use_backend("numpy"):
    out_ref = block(x)
print(me.compare("out numba/numpy", block(x), out_ref))
assert me.rel_error(block(x), out_ref) < 1e-12
dx = block.backward(dout)
checks = {"x": (x, dx),
          "depthwise.0.weight": (block.depthwise[0].weight.data, block.depthwise[0].weight.grad),
          "se.reduce_weight": (block.se.reduce_weight.data, block.se.reduce_weight.grad)}
for name, (array, analytic) in checks.items():
    analytic = analytic.copy()
    with me.use_backend("numpy"):
        numeric = me.numerical_gradient(lambda: block(x), array, dout)
    err = me.rel_error(analytic, numeric)
    print(me.compare(f"d {name}", analytic, numeric, rtol=1e-6, atol=1e-8), f" rel.err {err:.1e}")
    assert err < 1e-6

# %% [markdown]
# ### The gradient through a deep stack, with and without the residual
#
# How much does the identity path matter? We stack 32 blocks of this shape (B0 has 16
# blocks, B7 55), freshly initialised, and measure the norm of $dL/dx_i$ at the input of
# every block, relative to the upstream gradient at the top, once with the residual and
# once without it (the branches alone: expand → depthwise → SE → project, block after
# block). Twice: with BatchNorm in training mode (batch statistics, how the network
# trains), and in evaluation mode with fresh running statistics, where every BatchNorm is
# the identity — a network *without* normalisation.

# %%
n_blocks = 32
spec_deep = BlockSpec(expand_ratio=6, kernel=3, stride=1, in_channels=8, out_channels=8,
                      se_channels=2, drop_connect_rate=0.0, stage=1)
deep_rng = np.random.default_rng(5)
x_deep = deep_rng.standard_normal((8, 8, 8, 8))
dout_deep = deep_rng.standard_normal(x_deep.shape)


def gradient_norms(training, residual):
    """|dL/dx_i| / |dL/dy| at the input of block i = 0..n_blocks-1 (and the output, last)."""
    stack = [me.MBConv(spec_deep, config, rng=np.random.default_rng(100 + i), dtype=np.float64)
             for i in range(n_blocks)]
    layers = []
    for b in stack:
        b.train(training)
        layers.append([b] if residual else [b.expand, b.depthwise, b.se, b.project])
    h = x_deep
    for block_layers in layers:
        for m in block_layers:
            h = m.forward(h)
    d = dout_deep
    norms = [np.linalg.norm(d)]
    for block_layers in reversed(layers):
        for m in reversed(block_layers):
            d = m.backward(d)
        norms.append(np.linalg.norm(d))
    return np.array(norms[::-1]) / norms[0]            # input of block 0 first, output last


norms = {(t, r): gradient_norms(t, r) for t in (True, False) for r in (True, False)}
fig, ax = plt.subplots(1, 2, figsize=(11, 3.6), sharex=True)
for k, (training, title) in enumerate(((True, "BatchNorm, training mode"),
                                       (False, "BatchNorm = identity (no normalisation)"))):
    for residual, style in ((True, "o-"), (False, "s--")):
        ax[k].semilogy(np.arange(n_blocks + 1), norms[training, residual], style, ms=3,
                       label="with residual" if residual else "without residual")
    ax[k].set_title(title)
    ax[k].set_xlabel(f"block index i (input of block i; {n_blocks} = the output)")
ax[0].set_ylabel("|dL/dx_i| / |dL/dy|")
ax[0].legend()
fig.tight_layout()
for (training, residual), v in norms.items():
    print(f"training={training!s:5} residual={residual!s:5}: gradient at the input = "
          f"{v[0]:.3g} x the output's")

# %% [markdown]
# Four different pictures:
#
# * **no normalisation, no residual**: the gradient *vanishes* geometrically, to ~1e-15 at
#   the input: the first blocks would not learn;
# * **BatchNorm, no residual**: it *explodes* instead, a known property of deep plain
#   networks with batch statistics (Yang et al., *A Mean Field Theory of Batch
#   Normalization*, ICLR 2019);
# * **no normalisation, residual**: $dx = dy + (\partial F/\partial x)^\top dy$ keeps the
#   upstream term, so it can no longer vanish, but here it explodes too: every branch adds
#   to the stream, so activations and gradients grow by a roughly constant factor per block.
#   This is why residual networks *without* normalisation need a special initialisation
#   (Fixup, Zhang, Dauphin & Ma, ICLR 2019; or $\gamma = 0$ in each branch's last BatchNorm,
#   Goyal et al., 2017);
# * **BatchNorm and residual**, EfficientNet's choice: the gradient stays within about an
#   order of magnitude of the output's through all 32 blocks.

# %%
v = {k: n[0] for k, n in norms.items()}      # (training, residual) -> gradient at the input
assert v[False, False] < 1e-10                # plain, no normalisation: vanishes
assert v[True, False] > 100                   # plain, BatchNorm: explodes
assert v[False, True] > 100                   # residual, no normalisation: explodes
assert 1 < v[True, True] < 50                 # residual and BatchNorm: neither
assert all(n.min() > 0.5 for (t, r), n in norms.items() if r)   # a residual never vanishes

# %% [markdown]
# ## 4. Stochastic depth, per sample
#
# During training, each residual block's branch is dropped — for a whole **sample** — with
# probability $p$, so for that sample the block is the identity. Huang et al. found that
# training a network of randomly *shorter* depth regularises it and speeds training up.
# It is written as inverted dropout on the branch:
#
# $$y_n = x_n + \frac{b_n}{1-p}\,F(x)_n,\qquad b_n \sim \text{Bernoulli}(1 - p),$$
#
# so $\mathbb E[y_n] = x_n + F(x)_n$ and at evaluation time the block is used as is, with no
# rescaling. (EfficientNet's code calls it "drop connect"; torchvision's
# `StochasticDepth(p, "row")`.) The mask has shape $(N, 1, 1, 1)$: one draw per sample.

# %%
ones = np.ones((8, 2, 3, 3))
dc, dc_cache = me.ops.drop_connect_forward(ones, 0.5, np.random.default_rng(1))
do, _ = me.ops.dropout_forward(ones, 0.5, np.random.default_rng(1))
print("drop connect, the value of each sample:", dc.reshape(8, -1).min(axis=1), "(min)",
      dc.reshape(8, -1).max(axis=1), "(max)")
print("dropout, values in sample 0:   ", np.unique(do[0], return_counts=True))
for n in range(8):
    assert np.all(dc[n] == 0) or np.all(dc[n] == 2.0)      # all of a sample, or none

# its expectation: the mean of many masks is 1
p, n_draws = 0.3, 200_000
masks, _ = me.ops.drop_connect_forward(np.ones((n_draws, 1)), p, np.random.default_rng(2))
std_of_mean = np.sqrt(p / (1 - p) / n_draws)
print(f"mean of {n_draws} masks = {masks.mean():.4f}  (expected 1, std of the mean {std_of_mean:.4f})")
assert abs(masks.mean() - 1) < 4 * std_of_mean
assert set(np.unique(masks)) == {0.0, 1 / (1 - p)}

# evaluation mode is the identity
same, _ = me.ops.drop_connect_forward(ones, 0.5, np.random.default_rng(1), training=False)
assert same is ones

# %% [markdown]
# Its backward is a product with the same mask, `dx = dout * mask`; finite differences agree
# when every call draws the same mask (a fresh Generator with a fixed seed):

# %%
res = me.check_gradients(
    lambda x: me.ops.drop_connect_forward(x, 0.5, np.random.default_rng(7)),
    me.ops.drop_connect_backward, {"x": rng.standard_normal((6, 2, 3, 3))})
print(res["x"])
assert res["x"].error < 1e-8

# %% [markdown]
# ### A block with a dropped sample
#
# Give the block $p = 0.5$. A dropped sample passes through **exactly** unchanged; a kept one
# gets $x_n + F(x)_n / (1-p)$.
#
# Its gradient holds a surprise: is $dx_n = d\text{out}_n$ for a dropped sample? No.
# The branch's BatchNorms computed their statistics over the *whole* batch, dropped samples
# included, so sample $n$ still influences the kept samples' outputs — and receives gradient
# back through the batch mean and variance. Finite differences confirm the library gets this
# right. (We reset the block's Generator before every forward so that each call drops the
# same samples.)

# %%
spec_p = dataclasses.replace(spec, drop_connect_rate=0.5)
block = me.MBConv(spec_p, config, rng=np.random.default_rng(3), dtype=np.float64).train()
x = rng.standard_normal((6, 4, 4, 4))


def forward_fixed_mask():
    block.set_rng(np.random.default_rng(11))
    return block(x)


out = forward_fixed_mask()
dropped = [n for n in range(len(x)) if np.array_equal(out[n], x[n])]
print("dropped samples:", dropped)
assert 0 < len(dropped) < len(x)

h = x
for m in [block.expand, block.depthwise, block.se, block.project]:
    h = m.forward(h)
kept = [n for n in range(len(x)) if n not in dropped]
print(me.compare("kept: x + F(x)/(1-p)", out[kept], x[kept] + h[kept] / 0.5))
assert np.allclose(out[kept], x[kept] + h[kept] / 0.5, rtol=1e-12, atol=1e-12)

dout = rng.standard_normal(x.shape)
forward_fixed_mask()
dx = block.backward(dout)
with me.use_backend("numpy"):
    numeric = me.numerical_gradient(forward_fixed_mask, x, dout)
print(me.compare("dx vs numeric", dx, numeric, rtol=1e-6, atol=1e-8))
assert me.rel_error(dx, numeric) < 1e-6
for n in dropped:
    print(f"dropped sample {n}: max |dx - dout| = {np.abs(dx[n] - dout[n]).max():.2e}  (BatchNorm coupling)")
    assert np.abs(dx[n] - dout[n]).max() > 1e-6

# %% [markdown]
# **The block's backward, by hand.** `mbconv_backward(dout, block, keep, p)` computes the
# input gradient of a residual block whose last forward pass kept the samples where `keep`
# (N,) is True and dropped the others, at rate `p`, from the branch layers' own `backward`
# methods (`block.expand`, `block.depthwise`, `block.se`, `block.project`: each returns its
# input's gradient). The check compares it with the library's `block.backward` and with the
# finite differences above.

# %%
def mbconv_backward(dout, block, keep, p):
    """dx (N, C, H, W) of a residual MBConv block for dout (N, C, H, W), after a forward
    pass that kept the samples where keep (N,) is True, at drop rate p."""
    ### BEGIN SOLUTION
    # HINT: y = x + (b/(1 − p))·F(x) with b = 1 for a kept sample and 0 for a dropped one:
    #   two paths from x to y, so dx is a sum of two terms.
    # HINT: Drop connect's backward multiplies by the same per-sample factor b/(1 − p),
    #   shaped (N, 1, 1, 1) to broadcast; then come the branch's layers, the last first.
    # HINT: dx = dout + (the branch's backward of dout·b/(1 − p)). A dropped sample's branch
    #   term is not zero: the branch's BatchNorms mixed the whole batch.
    d = dout * (keep / (1 - p))[:, None, None, None]
    for layer in reversed([block.expand, block.depthwise, block.se, block.project]):
        d = layer.backward(d)
    return dout + d
    ### END SOLUTION


# %%
### CHECK: the block's backward with drop connect, against the library and finite differences
keep = np.array([n not in dropped for n in range(len(x))])
forward_fixed_mask()                     # the caches of this x and this mask
dx_lib = block.backward(dout)
dx_mine = mbconv_backward(dout, block, keep, 0.5)
print(me.compare("dx vs library", dx_mine, dx_lib))
print(me.compare("dx vs numeric", dx_mine, numeric, rtol=1e-6, atol=1e-8))
branch_term = dx_lib - dout              # linear in the gradient that enters the branch
common_mistakes = {
    "the branch's term only: the residual adds dout itself": branch_term,
    "missing the 1/(1 − p): a kept sample's branch is scaled in the backward as in the forward":
        dout + (1 - 0.5) * branch_term,
    "dout for a dropped sample: its values still fed the kept samples' BatchNorm statistics":
        np.where(keep[:, None, None, None], dx_lib, dout),
}
for what, wrong in common_mistakes.items():
    assert me.rel_error(dx_mine, wrong) > 1e-9, f"your dx is {what}"
assert me.rel_error(dx_mine, dx_lib) < 1e-10
assert me.rel_error(dx_mine, numeric) < 1e-6

# %% [markdown]
# ## 5. The schedule: deeper blocks are dropped more often
#
# Huang et al. let the survival probability fall linearly with depth: early blocks compute
# features everything else needs. EfficientNet (TF and torchvision) uses
#
# $$p_i = 0.2 \cdot \frac{i}{n}, \qquad i = 0, \dots, n-1 \text{ the global block index},$$
#
# applied only to blocks that have a residual. B0 has $n = 16$ blocks, B7 has 55.

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
for variant, colour in (("b0", "C0"), ("b7", "C1")):
    blocks = me.make_config(variant).blocks
    n = len(blocks)
    rates = np.array([b.drop_connect_rate for b in blocks])
    assert np.allclose(rates, 0.2 * np.arange(n) / n), variant
    residual = np.array([b.has_residual for b in blocks])
    ax.plot(np.arange(n), rates, "-", color=colour, alpha=0.5, label=f"{variant}: 0.2·i/{n}")
    ax.plot(np.arange(n)[residual], rates[residual], "o", color=colour, ms=4,
            label=f"{variant}: residual blocks (dropped)")
    ax.plot(np.arange(n)[~residual], rates[~residual], "x", color=colour, ms=6)
ax.set_xlabel("global block index i")
ax.set_ylabel("drop probability p_i")
ax.set_title("Stochastic depth schedule (x: no residual, never dropped)")
ax.legend(fontsize=8)
fig.tight_layout()

# the built model's layers carry the same rates
model = me.efficientnet("b0", num_classes=10)
for spec_i, blk in zip(model.config.blocks, model.blocks):
    if blk.use_residual:
        assert blk.drop_connect.p == spec_i.drop_connect_rate
    else:
        assert blk.drop_connect is None

# %% [markdown]
# ## Exercises
#
# 1. **Expected depth.** In one B0 training step, how many residual branches survive on
#    average per sample? Compute `expected_survivors` in closed form from the config, then
#    `simulated_survivors` by drawing one drop-connect mask per residual block (with
#    `me.ops.drop_connect_forward` on a batch of ones) for 20 000 samples.
# 2. **Count a block by hand.** B0's first block is MBConv1 (no expansion), 3×3, 32 → 16
#    channels, SE width 8. Write its parameter count as a sum of its layers (`params_by_hand`)
#    — depthwise conv, BN, SE (two FCs with bias), projection, BN — and check it against the
#    built block and against row 2 of the paper's Table 1 in `stage_table`.

# %%
# Exercise 1: the expected and the simulated number of residual branches B0 keeps per sample
### BEGIN SOLUTION
# HINT: Only residual blocks are dropped (`b.has_residual`), block i with probability
#   p_i = `b.drop_connect_rate`.
# HINT: The expectation of a sum is the sum of the expectations: Σ (1 − p_i) over the
#   residual blocks.
# HINT: To simulate, draw one mask per residual block with
#   `me.ops.drop_connect_forward(np.ones((20_000, 1)), p, rng)`: 0 or 1/(1 − p) per sample;
#   count, per sample, the masks that are > 0, and average.
residual_rates = [b.drop_connect_rate for b in config.blocks if b.has_residual]
expected_survivors = sum(1 - p for p in residual_rates)
draw_rng = np.random.default_rng(4)
survived = np.zeros(20_000)
for p in residual_rates:
    mask, _ = me.ops.drop_connect_forward(np.ones((20_000, 1)), p, draw_rng)
    survived += mask[:, 0] > 0
simulated_survivors = survived.mean()
### END SOLUTION

# %%
# Exercise 2: the parameters of B0's first block (MBConv1, 3x3, 32 -> 16, SE width 8)
C_in, C_out, k, se = 32, 16, 3, 8
### BEGIN SOLUTION
# HINT: Depthwise: one k×k filter per channel, no bias. Every BatchNorm has a weight and a
#   bias per channel (its running statistics are buffers, not parameters).
# HINT: SE: two fully connected layers, C_in → se and se → C_in, each with a bias.
# HINT: The projection is a 1×1 conv C_in → C_out without bias, then a BatchNorm. There is
#   no expand layer (expansion 1).
params_by_hand = (C_in * k * k + 2 * C_in                 # depthwise + BN
                  + C_in * se + se + se * C_in + C_in     # SE: reduce FC, expand FC
                  + C_in * C_out + 2 * C_out)             # projection + BN
### END SOLUTION

# %%
### CHECK: exercise 1, the expected depth of a B0 training step
assert expected_survivors is not ... and simulated_survivors is not ..., "compute both first"
print(f"expected {expected_survivors:.3f} of {len(residual_rates)} residual branches survive; "
      f"simulated {simulated_survivors:.3f}")
all_blocks = sum(1 - b.drop_connect_rate for b in config.blocks)
assert abs(expected_survivors - all_blocks) > 1e-9, (
    "you counted every block: only the residual ones are ever dropped")
assert abs(expected_survivors - simulated_survivors) < 0.05
assert abs(expected_survivors - sum(1 - 0.2 * i / 16 for i, b in enumerate(config.blocks)
                                    if b.has_residual)) < 1e-12

# %%
### CHECK: exercise 2, B0's first block counted by hand
assert params_by_hand is not ..., "count params_by_hand first"
first = me.MBConv(config.blocks[0], config, rng=rng)
built = sum(p.data.size for p in first.parameters())
table_row = me.scaling.stage_table(config)[1]
print(f"by hand {params_by_hand}, built {built}, Table 1 row {table_row.stage}: {table_row.params}")
assert params_by_hand != built + 2 * (C_in + C_out), (
    "BatchNorm's running mean and variance are buffers, not parameters")
assert params_by_hand != built - se - C_in, "SE's two fully connected layers have biases"
assert params_by_hand == built == table_row.params == 1448
assert first.expand is None and not first.use_residual
print("all exercises pass")
