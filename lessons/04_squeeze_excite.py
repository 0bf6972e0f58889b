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
# # Lesson 04 — Squeeze-and-Excitation
#
# **What you will learn**
#
# * what a squeeze-and-excitation (SE) block computes: a per-sample, per-channel *gate* in
#   (0, 1), computed from the whole feature map and multiplied back onto it;
# * its backward pass: the gradient reaches the input by **two paths** — directly through the
#   multiplication and, through the gates, via the global average — and what happens if you
#   forget one;
# * how EfficientNet sizes its SE bottleneck (from the block's *input* channels);
# * what the gates look like.
#
# **Exercise version:** `exercises/04_squeeze_excite.ipynb` leaves the gradients' derivation,
# the backward pass, its compact form (timed against the step-by-step one) and the exercises
# to you, with hints; the `### CHECK` cells grade each gradient and name the common mistakes
# (see `lessons/README.md`).
#
# Reference: Hu, Shen & Sun, *Squeeze-and-Excitation Networks* (CVPR 2018). MnasNet and
# EfficientNet put SE inside every MBConv block, with Swish in place of the original ReLU.

# %%
import matplotlib.pyplot as plt
import numpy as np

import minieffnet as me
from minieffnet.timing import best_time

rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The forward pass
#
# For $x \in \mathbb R^{N\times C\times H\times W}$ and a bottleneck of $C_r$ channels:
#
# $$\begin{aligned}
# s &= \tfrac{1}{HW}\textstyle\sum_{h,w} x_{:,:,h,w} && (N, C) && \text{squeeze: global average}\\
# z &= s\,W_1^\top + b_1 && (N, C_r) && \text{reduce}\\
# a &= \operatorname{swish}(z)\\
# e &= a\,W_2^\top + b_2 && (N, C) && \text{expand}\\
# g &= \sigma(e) && && \text{gate, in } (0, 1)\\
# \text{out} &= x \odot g_{:,:,\text{None},\text{None}} && (N, C, H, W) && \text{excite: rescale channels}
# \end{aligned}$$
#
# A channel's gate depends on *all* channels' averages: the block can learn, for example, to
# damp channels that are uninformative for this particular image.

# %%
N, C, Cr, H, W = 2, 6, 2, 4, 4
x = rng.standard_normal((N, C, H, W))
w1, b1 = rng.standard_normal((Cr, C)), rng.standard_normal(Cr)
w2, b2 = rng.standard_normal((C, Cr)), rng.standard_normal(C)

sigmoid = lambda v: me.ops.sigmoid_forward(v)[0]   # lesson 01's stable sigmoid


def se_forward_nodes(x, w1, b1, w2, b2):
    """Every value of the forward pass above: s, e, g (N, C); z, sz = sigmoid(z), a (N, Cr);
    out (N, C, H, W)."""
    s = x.mean(axis=(2, 3))
    z = s @ w1.T + b1
    sz = sigmoid(z)
    a = z * sz
    e = a @ w2.T + b2
    g = sigmoid(e)
    out = x * g[:, :, None, None]
    return s, z, sz, a, e, g, out


s, z, sz, a, e, g, out = se_forward_nodes(x, w1, b1, w2, b2)

out_lib, cache = me.ops.squeeze_excite_forward(x, w1, b1, w2, b2)
print(me.compare("out", out_lib, out))
assert me.rel_error(out_lib, out) < 1e-12

# %% [markdown]
# ## 2. The backward pass
#
# Walk the chain backwards with a random upstream gradient `dout`:
#
# <!-- BEGIN ANSWER -->
#
# $$\begin{aligned}
# dg &= \textstyle\sum_{h,w} d\text{out}\odot x && \text{(out} = x\,g\text{: the gate's gradient)}\\
# de &= dg \odot g(1-g) && \text{(sigmoid')}\\
# da &= de\,W_2,\quad dW_2 = de^\top a,\quad db_2 = \textstyle\sum_n de && \text{(linear)}\\
# dz &= da \odot \sigma(z)\bigl(1 + z(1-\sigma(z))\bigr) && \text{(swish', lesson 01)}\\
# ds &= dz\,W_1,\quad dW_1 = dz^\top s,\quad db_1 = \textstyle\sum_n dz\\
# dx &= \underbrace{d\text{out}\odot g}_{\text{direct path}} \;+\;
#       \underbrace{\tfrac{1}{HW}\, ds_{:,:,\text{None},\text{None}}}_{\text{through the squeeze}}
# \end{aligned}$$
#
# $x$ is used twice — multiplied by the gate and averaged into $s$ — so $dx$ has two terms.
#
# <!-- END ANSWER -->

# %%
dout = rng.standard_normal(x.shape)


def se_backward_by_nodes(dout, x, s, z, sz, a, g, w1, w2):
    """Every gradient for the upstream dout (N, C, H, W), given the forward's values and
    weights w1 (Cr, C), w2 (C, Cr): dg, de, da, dw2, db2, dz, ds, dw1, db1, dx, in the order
    of the return, each with its forward value's shape."""
    H, W = x.shape[2:]
    # One line per gradient, from the output back to x.
    ### BEGIN SOLUTION
    # HINT: x is used twice: multiplied by the gate (out = x·g) and averaged into s (the
    #   squeeze). So dx is a sum of two terms; between s and g the chain has one consumer
    #   per node, one term per gradient.
    # HINT: The local derivatives: out = x·g gives dg = Σ over h, w of dout·x, shape (N, C);
    #   the sigmoid's is g(1 − g) and swish's σ(z)(1 + z(1 − σ(z))) (lesson 01); a linear
    #   layer v = u Wᵀ + b gives du = dv W, dW = dvᵀ u and db = Σ over n of dv.
    # HINT: s = the mean over h, w of x hands ds back to each of the H·W pixels, divided by
    #   H·W: dx = dout·g + ds / (H·W), with g and ds broadcast over h, w.
    dg = (dout * x).sum(axis=(2, 3))
    de = dg * g * (1 - g)
    da = de @ w2
    dw2 = de.T @ a
    db2 = de.sum(axis=0)
    dz = da * sz * (1 + z * (1 - sz))
    ds = dz @ w1
    dw1 = dz.T @ s
    db1 = dz.sum(axis=0)
    dx = dout * g[:, :, None, None] + ds[:, :, None, None] / (H * W)
    ### END SOLUTION
    return dg, de, da, dw2, db2, dz, ds, dw1, db1, dx


dg, de, da, dw2, db2, dz, ds, dw1, db1, dx = se_backward_by_nodes(dout, x, s, z, sz, a, g, w1, w2)

# %% [markdown]
# ### Every intermediate against finite differences
#
# As in lesson 02: treat a node as an input, write the rest of the forward pass as a function
# of it, and difference the loss $\sum \text{out}\odot d\text{out}$. Finite differences run
# the forward hundreds of times on tiny arrays; we run them under the NumPy reference, which
# is quickest there (each Numba parallel kernel pays a thread start-up cost per call).
# A gradient still left as `...` (the exercise notebook's stub) is graded as not done.
#
# The check also names the common mistakes: a gradient of the wrong shape, one equal to the
# gradient of the node after it (a local derivative skipped), and a $dx$ along one of its
# two paths only — the derivative of the forward pass with the other path held fixed,
# differenced too.

# %%
def from_s(s_):
    z_ = s_ @ w1.T + b1
    return from_z(z_)


def from_z(z_):
    return from_a(z_ * sigmoid(z_))


def from_a(a_):
    return from_e(a_ @ w2.T + b2)


def from_e(e_):
    return from_g(sigmoid(e_))


def from_g(g_):
    return x * g_[:, :, None, None]


def from_x(x_):
    return se_forward_nodes(x_, w1, b1, w2, b2)[-1]


one_path_only = {   # dx along one path: the forward pass from x with the other held fixed
    "has the direct path only: x is also averaged into s (the squeeze path)":
        lambda x_: x_ * g[:, :, None, None],
    "has the squeeze path only: out = x·g also uses x directly":
        lambda x_: from_s(x_.mean(axis=(2, 3))),
}
next_node = {"e": "g", "z": "a"}    # elementwise nodes: a gradient equal to the next one's
local = {"e": "σ′(e) = g(1 − g)", "z": "swish′(z)"}


def mistakes(name, value, ours, numeric):
    """The common mistakes d<name> = ours makes, given the right gradients `numeric`."""
    if ours is ...:
        return []
    if np.shape(ours) != value.shape:
        return [f"your d{name} has shape {np.shape(ours)}, but {name} has {value.shape}: sum "
                f"over the axes along which {name} was broadcast"]
    found = []
    if name in next_node and me.rel_error(ours, numeric[next_node[name]]) < 1e-7:
        found.append(f"your d{name} equals d{next_node[name]}: multiply by the local "
                     f"derivative {local[name]}")
    if name == "x":
        for what, forward in one_path_only.items():
            v = value.copy()
            with me.use_backend("numpy"):
                partial = me.numerical_gradient(lambda: forward(v), v, dout)
            if me.rel_error(ours, partial) < 1e-6:
                found.append(f"your dx {what}")
    return found


# %%
### CHECK: every intermediate gradient against finite differences
nodes = {"g": (g, from_g, dg), "e": (e, from_e, de), "a": (a, from_a, da),
         "z": (z, from_z, dz), "s": (s, from_s, ds), "x": (x, from_x, dx)}
errors, numeric = {}, {}
for name, (value, f, ours) in nodes.items():
    v = value.copy()
    with me.use_backend("numpy"):
        numeric[name] = me.numerical_gradient(lambda: f(v), v, dout)
    errors[name] = np.inf if ours is ... else me.rel_error(ours, numeric[name])
    print(me.compare(f"d{name}", ours, numeric[name], rtol=1e-6, atol=1e-8),
          f" rel.err {errors[name]:.1e}")
wrong = [name for name, e in errors.items() if not e < 1e-7]
named = [text for name in wrong for text in mistakes(name, nodes[name][0], nodes[name][2], numeric)]
assert not wrong, (f"wrong or not done yet: {['d' + name for name in wrong]}"
                   + "".join(f"\n  {text}" for text in named))

# %% [markdown]
# And the five gradients the library returns, under both backends, plus `check_gradients`:

# %%
### CHECK: the five gradients the library returns equal ours
mine = {"dx": dx, "dw1": dw1, "db1": db1, "dw2": dw2, "db2": db2}
for backend in ("numpy", "numba"):
    with me.use_backend(backend):
        lib = dict(zip(mine, me.ops.squeeze_excite_backward(dout, cache)))
        res = me.check_gradients(me.ops.squeeze_excite_forward, me.ops.squeeze_excite_backward,
                                 {"x": x, "w1": w1, "b1": b1, "w2": w2, "b2": b2})
    print(f"--- {backend}")
    errors = {name: np.inf if mine[name] is ... else me.rel_error(lib[name], mine[name])
              for name in mine}
    for name in mine:
        print(me.compare(name, lib[name], mine[name]))
    print("finite differences:", ", ".join(f"{n} {r.error:.1e}" for n, r in res.items()))
    assert all(r.error < 1e-7 for r in res.values())
    wrong = [name for name, e in errors.items() if not e < 1e-10]
    assert not wrong, f"wrong or not done yet: {wrong}"

# %% [markdown]
# ### Forgetting the squeeze path
#
# It is tempting to treat the gate as a constant and write `dx = dout * g`. The missing term
# is divided by $H\cdot W$, so it is *small* — which makes this bug dangerous. Here it puts
# `dx` only 1–2 % off: just above a loose tolerance of 1e-2, of the kind common in
# hand-written gradient checks, and well inside 5e-2, which lets it through: how close a
# loose check comes to missing it depends on the input. A float64 check at 1e-7 catches it by five
# orders of magnitude (the right `dx` here is the library's, which the cell above showed
# equal to ours). The cell prints the error and asserts these relations.

# %%
dx_right = me.ops.squeeze_excite_backward(dout, cache)[0]
dx_forgot = dout * g[:, :, None, None]
xx = x.copy()
with me.use_backend("numpy"):
    numeric_dx = me.numerical_gradient(
        lambda: me.ops.squeeze_excite_forward(xx, w1, b1, w2, b2)[0], xx, dout)
err_forgot = me.rel_error(dx_forgot, numeric_dx)
err_right = me.rel_error(dx_right, numeric_dx)
print(f"dx without the squeeze path: rel.err {err_forgot:.1e}   with it: {err_right:.1e}")
print("passes 5e-2:", err_forgot < 5e-2, "  passes 1e-2:", err_forgot < 1e-2,
      "  passes 1e-7:", err_forgot < 1e-7)
assert 1e-2 < err_forgot < 2e-2 and err_right < 1e-7      # 1e-2 / 1e-7: five orders

# %% [markdown]
# ### The compact form, and what it buys
#
# BatchNorm's backward collapsed into one formula (lesson 02). Do the same here: substitute
# the chain into one expression for $dx$ (the weight gradients aside).
#
# <!-- BEGIN ANSWER -->
#
# $$dx = d\text{out}\odot g \;+\; \frac{1}{HW}\Bigl(\bigl(\bigl(\textstyle\sum_{h,w}
#   d\text{out}\odot x\bigr)\odot g(1-g)\bigr)\,W_2 \odot
#   \sigma(z)\bigl(1 + z(1-\sigma(z))\bigr)\Bigr)\,W_1$$
#
# with the $(N, C)$ factors broadcast over $h, w$.
#
# <!-- END ANSWER -->
#
# Then time it against the step-by-step backward, on a batch the size of B0's second
# stage (32 × 96 × 28 × 28, squeezed to 4 channels).

# %%
def se_backward_compact(dout, x, z, sz, g, w1, w2):
    """dx (N, C, H, W) in one expression, for dout, x (N, C, H, W), z, sz = sigmoid(z)
    (N, Cr), the gates g (N, C) and the weights w1 (Cr, C), w2 (C, Cr)."""
    H, W = x.shape[2:]
    ### BEGIN SOLUTION
    # HINT: Write dx = dout·g + ds/(H·W) and replace ds by its chain: ds = dz W1, dz = da
    #   times swish′(z), da = de W2, de = dg·g(1 − g), dg = Σ over h, w of dout·x.
    # HINT: Everything inside ds is an (N, C) or (N, Cr) matrix: one line, from the inside
    #   out, then [:, :, None, None] to broadcast it over h, w.
    return dout * g[:, :, None, None] + (
        (((dout * x).sum(axis=(2, 3)) * g * (1 - g)) @ w2 * sz * (1 + z * (1 - sz))) @ w1
    )[:, :, None, None] / (H * W)
    ### END SOLUTION


# %%
### CHECK: the compact dx equals the step-by-step one
assert dx is not ..., "write the step-by-step backward first"
dx_compact = se_backward_compact(dout, x, z, sz, g, w1, w2)
print(me.compare("dx compact", dx_compact, dx))
named = [] if me.rel_error(dx_compact, dx) < 1e-12 else mistakes("x", x, dx_compact, numeric)
assert me.rel_error(dx_compact, dx) < 1e-12, ("dx_compact differs from the step-by-step dx"
                                              + "".join(f"\n  {t}" for t in named))

# %%
### CHECK: the compact backward against the step-by-step one, timed
timing_rng = np.random.default_rng(1)
x_t, dout_t = timing_rng.standard_normal((2, 32, 96, 28, 28))
w1_t, b1_t = timing_rng.standard_normal((4, 96)), timing_rng.standard_normal(4)
w2_t, b2_t = timing_rng.standard_normal((96, 4)), timing_rng.standard_normal(96)
s_t, z_t, sz_t, a_t, _, g_t, _ = se_forward_nodes(x_t, w1_t, b1_t, w2_t, b2_t)
assert dx is not ..., "write the step-by-step backward first"
steps = lambda: se_backward_by_nodes(dout_t, x_t, s_t, z_t, sz_t, a_t, g_t, w1_t, w2_t)
compact = lambda: se_backward_compact(dout_t, x_t, z_t, sz_t, g_t, w1_t, w2_t)
assert me.rel_error(compact(), steps()[-1]) < 1e-10
ms = {"step by step": 1e3 * best_time(steps), "compact": 1e3 * best_time(compact)}
for name, t in ms.items():
    print(f"{name:>12}: {t:7.1f} ms for x {x_t.shape}")
print(f"the compact backward takes {ms['compact'] / ms['step by step']:.2f}x the time")

# %% [markdown]
# Unlike BatchNorm's, SE's compact form buys (almost) nothing: on the machine these lessons
# were written on both took 32 ms. Everything between $s$ and $g$ works on $(N, C)$ and
# $(N, C_r)$ matrices, a few thousand numbers; the time goes into the passes over the
# $(N, C, H, W)$ tensors, and both versions make the same ones: `dout * x` written out
# and summed, then $dx$. What would help is fewer *passes*, not fewer lines: summing
# $d\text{out}\odot x$ without writing the product (`np.einsum("nchw,nchw->nc", dout, x)`
# took 22 ms), or the library's Numba kernel, which makes each of the two passes a single
# parallel sweep.

# %% [markdown]
# ## 3. How wide is the bottleneck?
#
# Hu et al. reduce by a ratio $r = 16$ of the SE block's own channels. EfficientNet's MBConv
# applies SE to the *expanded* channels (6× the block input) but sizes the bottleneck from
# the block's **input** channels: $C_r = \max(1, \lfloor 0.25\, C_\text{in}\rfloor)$. So in
# B0's second block, 96 expanded channels squeeze to just 4. The config and the built layers
# must agree:

# %%
model = me.efficientnet("b0", num_classes=10)
print(f"{'block':>5} {'in':>4} {'expanded':>9} {'SE':>4}")
for i, (spec, block) in enumerate(zip(model.config.blocks, model.blocks)):
    expected = max(1, int(0.25 * spec.in_channels))
    assert spec.se_channels == expected
    assert block.se.reduce_weight.data.shape == (expected, spec.expanded_channels)
    assert block.se.expand_weight.data.shape == (spec.expanded_channels, expected)
    if i < 6:
        print(f"{i:>5} {spec.in_channels:>4} {spec.expanded_channels:>9} {spec.se_channels:>4}")
print("...  every block: SE width = max(1, int(0.25 * input channels))")

# %% [markdown]
# ## 4. What the gates look like
#
# We make a batch where each sample "lights up" a different group of channels (a large mean in
# those channels), and an SE block whose weights respond to channel averages: $W_1$ sums
# groups of channels, $W_2$ maps each group back to its own channels. Then the gate opens
# for the channels that carry the signal in *that* sample — the same weights give every sample
# its own recalibration. (A trained network learns such weights; here we set them by hand.)

# %%
N, C, groups, H, W = 4, 16, 4, 8, 8
size = C // groups
x = rng.standard_normal((N, C, H, W)) * 0.5
for n in range(N):
    x[n, n * size:(n + 1) * size] += 2.0          # sample n: channel group n is active
w1 = np.kron(np.eye(groups), np.ones((1, size))) / size     # (groups, C): group averages
b1 = np.zeros(groups)
w2 = np.kron(np.eye(groups), np.ones((size, 1))) * 4.0      # (C, groups): back to the group
b2 = np.full(C, -2.0)
out, _ = me.ops.squeeze_excite_forward(x, w1, b1, w2, b2)
z = x.mean(axis=(2, 3)) @ w1.T + b1
gates = sigmoid((z * sigmoid(z)) @ w2.T + b2)                # (N, C), by the formulas of §1
print(me.compare("out = x * gates", out, x * gates[:, :, None, None]))
assert np.allclose(out, x * gates[:, :, None, None], rtol=1e-12, atol=1e-12)

fig, ax = plt.subplots(1, 2, figsize=(11, 3.2))
im = ax[0].imshow(gates, cmap="viridis", vmin=0, vmax=1, aspect="auto")
ax[0].set_xlabel("channel")
ax[0].set_ylabel("sample")
ax[0].set_yticks(range(N))
ax[0].set_title("SE gates g[n, c]")
fig.colorbar(im, ax=ax[0])
ax[1].bar(np.arange(C) - 0.2, x[1].mean(axis=(1, 2)), width=0.4, label="channel mean of x")
ax[1].bar(np.arange(C) + 0.2, out[1].mean(axis=(1, 2)), width=0.4, label="after excite")
ax[1].set_title("sample 1: channels before and after SE")
ax[1].set_xlabel("channel")
ax[1].legend()
fig.tight_layout()
for n in range(N):
    active = gates[n, n * size:(n + 1) * size].mean()
    others = np.delete(gates[n], np.s_[n * size:(n + 1) * size]).mean()
    assert active > 0.8 and others < 0.2, (n, active, others)

# %% [markdown]
# ## Exercises
#
# 1. **A closed gate at one half.** With $W_2 = 0$ and $b_2 = 0$ every gate is
#    $\sigma(0) = \tfrac12$, whatever the input. Predict the output and the input gradient
#    `dx_predicted` for an upstream `dout`, *before* running the library, and then check.
#    (Which of the two paths of $dx$ survives?)
# 2. **How much does SE cost?** SE is two small fully connected layers on pooled vectors.
#    For B0's block with 40 input channels and expansion 6 on a 28×28 map, compute
#    `se_macs` (multiply-adds of the two FCs) and `se_params` (weights and biases), and
#    compare with the 5×5 depthwise conv's multiply-adds on the same map.

# %%
# Exercise 1: predict the SE block's output and input gradient for W2 = 0, b2 = 0
x = rng.standard_normal((2, 6, 4, 4))
dout = rng.standard_normal(x.shape)
w1, b1 = rng.standard_normal((3, 6)), rng.standard_normal(3)
w2, b2 = np.zeros((6, 3)), np.zeros(6)
### BEGIN SOLUTION
# HINT: The gate is ½ whatever x is. Which of dx's two terms needs the gate to depend on x?
# HINT: da = de W2 = 0: nothing flows back through the squeeze, so only dout·g is left.
out_predicted = 0.5 * x
dx_predicted = 0.5 * dout          # da = de @ W2 = 0, so nothing flows through the squeeze
### END SOLUTION

# %%
# Exercise 2: B0's block with 40 input channels, expansion 6, on a 28x28 map
### BEGIN SOLUTION
# HINT: The block expands 40 to 240 channels; SE squeezes to max(1, int(0.25 × 40)), from
#   the block's input width (section 3).
# HINT: Each FC runs once per sample, on the pooled vector: its multiply-adds are its
#   weights (in × out); its parameters are the weights plus one bias per output.
# HINT: A k×k depthwise conv costs k² multiply-adds per channel and output pixel.
expanded, squeezed = 40 * 6, max(1, int(0.25 * 40))
se_macs = 2 * expanded * squeezed
se_params = 2 * expanded * squeezed + squeezed + expanded
depthwise_macs = expanded * 5 * 5 * 28 * 28
### END SOLUTION

# %%
### CHECK: exercise 1, a gate of one half everywhere
out, cache = me.ops.squeeze_excite_forward(x, w1, b1, w2, b2)
dx_lib = me.ops.squeeze_excite_backward(dout, cache)[0]
print(me.compare("out", out, out_predicted))
print(me.compare("dx", dx_lib, dx_predicted))
assert out_predicted is not ... and np.allclose(out, out_predicted, rtol=0, atol=1e-15)
assert dx_predicted is not ... and np.allclose(dx_lib, dx_predicted, rtol=0, atol=1e-15)

# %%
### CHECK: exercise 2, SE's cost next to the depthwise conv's
assert se_macs != 2 * 240 * 60, "SE squeezes from the block's input width (40), not 240"
assert se_macs != 4800 * 28 * 28, "SE's FCs run once per sample, not per pixel"
assert se_params == 5050 and se_macs == 4800 and depthwise_macs == 4_704_000
print(f"SE: {se_params:,} parameters, {se_macs:,} multiply-adds; "
      f"depthwise: {depthwise_macs:,} multiply-adds ({depthwise_macs / se_macs:.0f}x more)")
print("all exercises pass")
