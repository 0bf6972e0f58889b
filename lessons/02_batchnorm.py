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
# # Lesson 02 — Batch normalisation, forward and backward
#
# **What you will learn**
#
# * what BatchNorm computes in training and in evaluation mode, and how its running
#   statistics are updated (and why TensorFlow's momentum 0.99 is PyTorch's 0.01);
# * how to derive its backward pass one node of the computational graph at a time, as in
#   Karpathy's makemore part 4 — checking **every intermediate gradient** with `me.compare`
#   against finite differences and against the library;
# * how to collapse the steps into the compact formula the library uses;
# * why a gradient check with a **constant** upstream gradient is worthless for BatchNorm:
#   it lets a wrong backward pass, while a random one catches it.
#
# **Exercise version:** `exercises/02_batchnorm.ipynb` leaves the backward column of the node
# table, the node-by-node backward, the compact formula (timed against the node-by-node one)
# and the exercises to you, with hints; the `### CHECK` cells grade each gradient and name
# the common mistakes (see `lessons/README.md`).
#
# Reference: Ioffe & Szegedy, *Batch Normalization: Accelerating Deep Network Training by
# Reducing Internal Covariate Shift* (ICML 2015), Algorithm 1. EfficientNet follows every
# convolution with BatchNorm.

# %%
import matplotlib.pyplot as plt
import numpy as np

import minieffnet as me
from minieffnet.timing import best_time

rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The forward pass
#
# For an NCHW tensor, BatchNorm2d normalises each channel $c$ over the $m = N\cdot H\cdot W$
# values it has in the batch, then rescales with learned $\gamma_c$ and shifts by $\beta_c$:
#
# $$\mu = \frac1m \sum_i x_i,\qquad
#   \sigma^2 = \frac1m \sum_i (x_i - \mu)^2,\qquad
#   \hat x_i = \frac{x_i - \mu}{\sqrt{\sigma^2 + \epsilon}},\qquad
#   y_i = \gamma\,\hat x_i + \beta .$$
#
# We write it as a chain of small nodes, keeping every intermediate — these are the nodes of
# the computational graph we will differentiate:
#
# ```
# x ──► mu ──► xc = x − mu ──► var = mean(xc²) ──► istd = (var + eps)^(-1/2)
#                 │                                        │
#                 └──────────────► xhat = xc · istd ◄──────┘ ──► y = gamma · xhat + beta
# ```

# %%
N, C, H, W = 4, 3, 5, 5
m = N * H * W
eps = 1e-5
x = rng.standard_normal((N, C, H, W)) * 2.0 + 0.5
gamma = rng.standard_normal(C)
beta = rng.standard_normal(C)
axes = (0, 2, 3)
pc = lambda v: v.reshape(1, -1, 1, 1)    # a (C,) vector broadcast against NCHW


def bn_forward_nodes(x, gamma, beta):
    """Every node of the graph for x (N, C, H, W) and gamma, beta (C,): mu, var, istd
    (1, C, 1, 1) and xc, xhat, y (N, C, H, W)."""
    mu = x.mean(axis=axes, keepdims=True)          # (1, C, 1, 1)
    xc = x - mu                                    # (N, C, H, W)
    var = (xc ** 2).mean(axis=axes, keepdims=True) # (1, C, 1, 1), biased: divide by m
    istd = (var + eps) ** -0.5                     # (1, C, 1, 1)
    xhat = xc * istd                               # (N, C, H, W)
    y = pc(gamma) * xhat + pc(beta)                # (N, C, H, W)
    return mu, xc, var, istd, xhat, y


mu, xc, var, istd, xhat, y = bn_forward_nodes(x, gamma, beta)

running_mean, running_var = np.zeros(C), np.ones(C)
y_lib, cache = me.ops.batchnorm2d_forward(x, gamma, beta, running_mean, running_var,
                                          training=True, momentum=0.1, eps=eps)
print(me.compare("y", y_lib, y))
assert np.allclose(y_lib, y, rtol=1e-12, atol=1e-12)
print("per-channel mean of xhat:", xhat.mean(axis=axes).round(12))
print("per-channel var  of xhat:", xhat.var(axis=axes).round(6))

# %% [markdown]
# ## 2. Training versus evaluation
#
# In **training**, the batch statistics are used, and running estimates are updated in place
# (PyTorch's convention, which the library follows):
#
# $$\text{running\_mean} \leftarrow (1 - m_\text{om})\,\text{running\_mean} + m_\text{om}\,\mu,
#   \qquad
#   \text{running\_var} \leftarrow (1 - m_\text{om})\,\text{running\_var} + m_\text{om}\,
#   \sigma^2 \frac{m}{m-1}$$
#
# (the running variance is the *unbiased* estimate). TensorFlow and the EfficientNet paper
# write the weight on the *old* value instead, so TF's `momentum=0.99` is PyTorch's `0.01`.
#
# In **evaluation** the running statistics replace $\mu$ and $\sigma^2$: each sample is
# normalised on its own, whatever else is in the batch.

# %%
print("running_mean after one step:", running_mean)
assert np.allclose(running_mean, 0.9 * 0 + 0.1 * mu.ravel())
assert np.allclose(running_var, 0.9 * 1 + 0.1 * var.ravel() * m / (m - 1))

# The same first sample in two different batches:
other = rng.standard_normal((N, C, H, W)) * 5
batch_a = x
batch_b = np.concatenate([x[:1], other[1:]])
outs = {}
for mode in ("train", "eval"):
    rm, rv = running_mean.copy(), running_var.copy()
    ya, _ = me.ops.batchnorm2d_forward(batch_a, gamma, beta, rm, rv, training=mode == "train")
    yb, _ = me.ops.batchnorm2d_forward(batch_b, gamma, beta, rm, rv, training=mode == "train")
    outs[mode] = np.abs(ya[0] - yb[0]).max()
    print(f"{mode}: sample 0's output changes by up to {outs[mode]:.3g} with its batch-mates")
assert outs["train"] > 0.1 and outs["eval"] == 0.0

# %% [markdown]
# ## 3. The backward pass, one node at a time
#
# We pick a **random** upstream gradient `dy` $= \partial L/\partial y$ (the loss is then
# $L = \sum y \odot dy$) and walk the graph backwards. At each node, the gradient of a value is
# the sum over every path out of it (the multivariate chain rule). With sums over
# $(n, h, w)$ written $\sum$:
#
# <!-- BEGIN ANSWER: last column -->
#
# | node | forward | backward |
# |---|---|---|
# | output | $y = \gamma\hat x + \beta$ | $d\beta = \sum dy$, $d\gamma = \sum dy\,\hat x$, $d\hat x = \gamma\,dy$ |
# | normalise | $\hat x = x_c \cdot \text{istd}$ | $d\,\text{istd} = \sum d\hat x\,x_c$, $\;dx_c \mathrel{+}= d\hat x\cdot\text{istd}$ |
# | inverse std | $\text{istd} = (\text{var} + \epsilon)^{-1/2}$ | $d\,\text{var} = -\tfrac12(\text{var}+\epsilon)^{-3/2}\, d\,\text{istd}$ |
# | variance | $\text{var} = \tfrac1m \sum x_c^2$ | $dx_c \mathrel{+}= \tfrac{2}{m}\,x_c\, d\,\text{var}$ |
# | centre | $x_c = x - \mu$ | $d\mu = -\sum dx_c$, $\;dx \mathrel{+}= dx_c$ |
# | mean | $\mu = \tfrac1m\sum x$ | $dx \mathrel{+}= \tfrac1m\, d\mu$ |
#
# <!-- END ANSWER -->
#
# <!-- BEGIN ANSWER -->
#
# $x_c$ has two consumers ($\hat x$ and var), so its gradient has two terms; $x$ has two
# consumers ($x_c$ and $\mu$), so it too has two.
#
# <!-- END ANSWER -->

# %%
dy = rng.standard_normal(y.shape)
S = lambda a: a.sum(axis=axes, keepdims=True)   # sum over n, h, w per channel, kept (1, C, 1, 1)


def bn_backward_by_nodes(dy, xc, var, istd, xhat, gamma):
    """Every node's gradient for the upstream gradient dy (N, C, H, W), given the forward's
    xc, xhat (N, C, H, W), var, istd (1, C, 1, 1) and gamma (C,): dbeta, dgamma, distd, dvar,
    dmu (1, C, 1, 1) and dxhat, dxc, dx (N, C, H, W), in the order of the return."""
    m = dy.size // dy.shape[1]                  # values per channel: N * H * W
    # One line per row of the table, from the output back to x.
    ### BEGIN SOLUTION
    # HINT: Two values have two consumers: x_c (it feeds x̂ and var) and x (it feeds x_c
    #   and μ). Each of their gradients is a sum of two terms, one per consumer; every
    #   other node has one consumer and one term.
    # HINT: A gradient has its value's shape. β, γ, istd, var and μ are (1, C, 1, 1) and
    #   were broadcast against (N, C, H, W) arrays, so their gradients sum over n, h, w
    #   (`S(...)`); dx̂, dx_c and dx stay (N, C, H, W).
    # HINT: Node by node: x̂ = x_c·istd gives d istd = Σ dx̂·x_c and dx_c = dx̂·istd;
    #   istd = (var + ε)^(−1/2) gives d var = −½ (var + ε)^(−3/2) · d istd;
    #   var = (1/m) Σ x_c² adds (2/m)·x_c·d var to dx_c; x_c = x − μ gives dμ = −Σ dx_c
    #   and dx = dx_c + (the mean's term); μ = (1/m) Σ x gives that term, dμ/m.
    dbeta = S(dy)
    dgamma = S(dy * xhat)
    dxhat = pc(gamma) * dy
    distd = S(dxhat * xc)
    dxc = dxhat * istd                      # path 1: through xhat
    dvar = -0.5 * (var + eps) ** -1.5 * distd
    dxc = dxc + 2.0 / m * xc * dvar         # path 2: through var
    dmu = -S(dxc)
    dx = dxc + dmu / m                      # x feeds xc directly and mu
    ### END SOLUTION
    return dbeta, dgamma, dxhat, distd, dvar, dxc, dmu, dx


dbeta, dgamma, dxhat, distd, dvar, dxc, dmu, dx = bn_backward_by_nodes(dy, xc, var, istd, xhat,
                                                                       gamma)

# %% [markdown]
# ### Checking every intermediate
#
# How do we check $d\,\text{var}$ numerically? Treat `var` as if it were an input: write the
# rest of the forward pass as a function *of it* (everything upstream held fixed), perturb
# its entries, and difference $L$. The node's gradient from backprop must equal that
# derivative — for every node of the graph (and for the parameters $\gamma$, $\beta$).
# A gradient still left as `...` (the exercise notebook's stub) is graded as not done.
#
# The same trick names the common mistakes. A gradient that follows only some of the paths
# out of a node is the derivative of a forward pass in which the other paths are held
# fixed: difference that one too, and a gradient equal to it has left those paths out.

# %%
rest_of_forward = {
    # node: (its value, the forward pass from that node on, reading the node's array)
    "beta": (pc(beta), lambda v: pc(gamma) * xhat + v),
    "gamma": (pc(gamma), lambda v: v * xhat + pc(beta)),
    "xhat": (xhat, lambda v: pc(gamma) * v + pc(beta)),
    "istd": (istd, lambda v: pc(gamma) * (xc * v) + pc(beta)),
    "var":  (var,  lambda v: pc(gamma) * (xc * (v + eps) ** -0.5) + pc(beta)),
    "xc":   (xc,   lambda v: pc(gamma) * (v * ((v ** 2).mean(axis=axes, keepdims=True) + eps) ** -0.5) + pc(beta)),
    "mu":   (mu,   lambda v: pc(gamma) * ((x - v) * (((x - v) ** 2).mean(axis=axes, keepdims=True) + eps) ** -0.5) + pc(beta)),
    "x":    (x,    lambda v: pc(gamma) * ((v - v.mean(axis=axes, keepdims=True)) * (v.var(axis=axes, keepdims=True) + eps) ** -0.5) + pc(beta)),
}
some_paths_only = {
    # node: {the mistake: the forward pass from the node, the paths it leaves out held fixed}
    "xc": {"has the x̂ path only (x_c also feeds var)":
               lambda v: rest_of_forward["xhat"][1](v * istd),
           "has the var path only (x_c also feeds x̂)":
               lambda v: rest_of_forward["var"][1]((v ** 2).mean(axis=axes, keepdims=True))},
    "x": {"has the x_c path only (x also feeds μ)":
              lambda v: rest_of_forward["xc"][1](v - mu),
          "has the μ path only (x also feeds x_c)":
              lambda v: rest_of_forward["mu"][1](v.mean(axis=axes, keepdims=True)),
          "leaves out the path through the variance (it is the gradient with istd held fixed)":
              lambda v: rest_of_forward["xhat"][1]((v - v.mean(axis=axes, keepdims=True)) * istd)},
}


def mistakes(name, ours):
    """The common mistakes d<name> = ours makes: a wrong shape or sign, or paths left out."""
    value, f = rest_of_forward[name]
    if ours is ...:
        return []
    if np.shape(ours) != value.shape:
        return [f"your d{name} has shape {np.shape(ours)}, but {name} has {value.shape}: sum "
                f"over the axes along which {name} was broadcast"]
    node = value.copy()
    found = []
    if me.rel_error(-ours, me.numerical_gradient(lambda: f(node), node, dy)) < 1e-6:
        found.append(f"your d{name} has the wrong sign")
    for what, partial_forward in some_paths_only.get(name, {}).items():
        partial = me.numerical_gradient(lambda: partial_forward(node), node, dy)
        if me.rel_error(ours, partial) < 1e-6:
            found.append(f"your d{name} {what}")
    return found


# %%
### CHECK: every node's gradient against finite differences
ours = {"beta": dbeta, "gamma": dgamma, "xhat": dxhat, "istd": distd, "var": dvar, "xc": dxc,
        "mu": dmu, "x": dx}
errors = {}
for name, (value, f) in rest_of_forward.items():
    node = value.copy()                       # perturbed in place by numerical_gradient
    numeric = me.numerical_gradient(lambda: f(node), node, dy)
    errors[name] = np.inf if ours[name] is ... else me.rel_error(ours[name], numeric)
    print(me.compare(f"d{name}", ours[name], numeric, rtol=1e-6, atol=1e-8),
          f" rel.err {errors[name]:.1e}")
wrong = [name for name, e in errors.items() if not e < 1e-7]
named = [text for name in wrong for text in mistakes(name, ours[name])]
assert not wrong, (f"wrong or not done yet: {['d' + name for name in wrong]}"
                   + "".join(f"\n  {text}" for text in named))

# %% [markdown]
# And against the library (both backends), for the three gradients it returns:

# %%
### CHECK: the library's three gradients equal ours
assert all(g is not ... for g in (dx, dgamma, dbeta)), "write dx, dgamma and dbeta first"
for backend in ("numpy", "numba"):
    with me.use_backend(backend):
        dx_lib, dgamma_lib, dbeta_lib = me.ops.batchnorm2d_backward(dy, cache)
    print(f"--- {backend}")
    print(me.compare("dx", dx_lib, dx))
    print(me.compare("dgamma", dgamma_lib, dgamma.ravel()))
    print(me.compare("dbeta", dbeta_lib, dbeta.ravel()))
    assert me.rel_error(dx_lib, dx) < 1e-10
    assert me.rel_error(dgamma_lib, dgamma.ravel()) < 1e-10
    assert me.rel_error(dbeta_lib, dbeta.ravel()) < 1e-10

# %% [markdown]
# ## 4. The compact formula
#
# Substitute the node-by-node steps into each other until $dx$ is one expression in $dy$,
# $\hat x$, istd and $\gamma$.
#
# <!-- BEGIN ANSWER -->
#
# Substituting the steps into each other (and using $x_c\,\text{istd} = \hat x$,
# $\sum \hat x = 0$):
#
# $$d\mu = -\text{istd}\sum d\hat x \qquad (\text{the } d\,\text{var} \text{ term drops out since } \textstyle\sum x_c = 0)$$
#
# $$dx = \frac{\gamma\,\text{istd}}{m}\Bigl(m\,dy - \sum dy - \hat x \sum dy\,\hat x\Bigr)
#      = \frac{\gamma\,\text{istd}}{m}\bigl(m\,dy - d\beta - \hat x\, d\gamma\bigr).$$
#
# Three terms, one per path: the direct one, the one through the mean, the one through the
# variance.
#
# <!-- END ANSWER -->
#
# This is what `minieffnet/ops/batchnorm.py` computes (its Numba kernel in two passes
# over memory, recomputing $\hat x$ instead of caching it). Below it is
# `bn_backward_compact`: checked against the node-by-node $dx$, then timed against it.

# %%
def bn_backward_compact(dy, xhat, istd, gamma):
    """dx (N, C, H, W) in one expression, for dy, xhat (N, C, H, W), istd (1, C, 1, 1) and
    gamma (C,)."""
    m = dy.size // dy.shape[1]                  # values per channel: N * H * W
    ### BEGIN SOLUTION
    # HINT: Start from dx = dx_c + dμ/m and replace every gradient by its line of section
    #   3, down to dy. Use x_c·istd = x̂ to write everything in x̂.
    # HINT: Σ x_c = 0 (and so Σ x̂ = 0): the variance's term in dμ drops out, leaving
    #   dμ = −istd · Σ dx̂.
    # HINT: Factor out γ·istd/m: three terms remain, one per path from x to y (direct,
    #   through the mean, through the variance), with Σ dy = dβ and Σ dy·x̂ = dγ.
    return pc(gamma) * istd / m * (m * dy - S(dy) - xhat * S(dy * xhat))
    ### END SOLUTION


# %%
### CHECK: the compact formula equals the node-by-node dx
assert dx is not ..., "write the node-by-node dx first (section 3)"
dx_compact = bn_backward_compact(dy, xhat, istd, gamma)
print(me.compare("dx compact", dx_compact, dx))
named = [] if me.rel_error(dx_compact, dx) < 1e-12 else mistakes("x", dx_compact)
assert me.rel_error(dx_compact, dx) < 1e-12, ("dx_compact differs from the node-by-node dx"
                                              + "".join(f"\n  {t}" for t in named))

# %% [markdown]
# Which is faster? Time both on a batch the size of an early EfficientNet layer's
# (32 × 64 × 28 × 28). The node-by-node backward makes a pass over memory for every
# full-size intermediate it writes or reads; the compact formula needs far fewer. On the
# two-core machine these lessons were written on, it took about half the time (28 ms
# against 59 ms).

# %%
### CHECK: the compact backward against the node-by-node one, timed
timing_rng = np.random.default_rng(1)
x_t = timing_rng.standard_normal((32, 64, 28, 28))
gamma_t, beta_t = timing_rng.standard_normal(64), timing_rng.standard_normal(64)
dy_t = timing_rng.standard_normal(x_t.shape)
_, xc_t, var_t, istd_t, xhat_t, _ = bn_forward_nodes(x_t, gamma_t, beta_t)
assert dx is not ..., "write the node-by-node backward first (section 3)"
dx_nodes_t = bn_backward_by_nodes(dy_t, xc_t, var_t, istd_t, xhat_t, gamma_t)[-1]
assert me.rel_error(bn_backward_compact(dy_t, xhat_t, istd_t, gamma_t), dx_nodes_t) < 1e-10
ms = {"node by node": 1e3 * best_time(lambda: bn_backward_by_nodes(dy_t, xc_t, var_t, istd_t,
                                                                    xhat_t, gamma_t)),
      "compact": 1e3 * best_time(lambda: bn_backward_compact(dy_t, xhat_t, istd_t, gamma_t))}
for name, t in ms.items():
    print(f"{name:>12}: {t:7.1f} ms for x {x_t.shape}")
print(f"the compact backward takes {ms['compact'] / ms['node by node']:.2f}x the time")

# %% [markdown]
# ## 5. A constant upstream gradient hides bugs
#
# Suppose a student forgets the variance path and writes
# `dx = gamma·istd/m · (m·dy − Σdy)`. Test it with the loss $L = \sum y$, i.e. `dy = 1`
# everywhere — a common shortcut. Then $\sum_i y_i = \gamma \sum_i \hat x_i + m\beta
# = m\beta$, because $\hat x$ always sums to zero: **the loss does not depend on $x$ at all**, so
# the true $dx$ is identically zero. And the buggy formula gives $m\cdot 1 - m = 0$ too. The
# check passes. A random `dy` catches it at once.

# %%
def dx_buggy(dy):
    """Forgets the path through the variance."""
    return pc(gamma) * istd / m * (m * dy - S(dy))


def dx_numeric(dy):
    f = rest_of_forward["x"][1]
    xx = x.copy()
    return me.numerical_gradient(lambda: f(xx), xx, dy)


def gradient_check_passes(ours, numeric):
    """The check a hurried student writes: elementwise agreement to 1e-6."""
    return bool(np.allclose(ours, numeric, rtol=1e-5, atol=1e-6))


dx_const_lib, _, _ = me.ops.batchnorm2d_backward(np.ones_like(y), cache)
print(f"library dx for dy = 1: max |dx| = {np.abs(dx_const_lib).max():.1e}  (identically zero)")
assert np.abs(dx_const_lib).max() < 1e-12

verdicts = {}
for label, upstream in (("constant dy", np.ones_like(y)), ("random dy", dy)):
    numeric = dx_numeric(upstream)
    buggy = dx_buggy(upstream)
    verdicts[label] = gradient_check_passes(buggy, numeric)
    print(f"{label:>12}: max |true dx| = {np.abs(numeric).max():.1e}   "
          f"max |buggy dx| = {np.abs(buggy).max():.1e}   "
          f"max diff = {np.abs(buggy - numeric).max():.1e}   check passes: {verdicts[label]}")
assert verdicts["constant dy"], "with dy = 1 both gradients are zero: the bug goes unseen"
assert not verdicts["random dy"], "a random upstream gradient must catch the bug"

# %% [markdown]
# With `dy = 1` both sides are zero up to finite-difference noise (~1e-8), so the buggy
# backward "passes". A *relative* error would not have saved us either: the ratio of two
# noise-level numbers is meaningless. The lesson: always differentiate $\sum y \odot dy$ with
# a random $dy$ — the same holds for softmax, whose outputs also sum to a constant.

# %% [markdown]
# `me.check_gradients` always uses a random upstream gradient. Here it is on the library op
# in both modes (in evaluation mode the statistics are constants, so
# $dx = \gamma\,\text{istd}_\text{running}\,dy$):

# %%
for mode in (True, False):
    def forward(x, gamma, beta):
        return me.ops.batchnorm2d_forward(x, gamma, beta, np.zeros(C) + 0.3, np.ones(C) * 2.0,
                                          training=mode)
    for backend in ("numpy", "numba"):
        with me.use_backend(backend):
            res = me.check_gradients(forward, me.ops.batchnorm2d_backward,
                                     {"x": x, "gamma": gamma, "beta": beta})
        worst = max(r.error for r in res.values())
        print(f"training={mode!s:5} {backend:5}: " + ", ".join(f"{k} {r.error:.1e}" for k, r in res.items()))
        assert worst < 1e-7

# %% [markdown]
# ## 6. A picture: what normalisation does to a channel
#
# Three channels with very different scales and offsets come out standardised, then scaled by
# their own $\gamma$ and shifted by $\beta$.

# %%
fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
for c in range(C):
    ax[0].hist(x[:, c].ravel() * (c + 1) + 3 * c, bins=20, alpha=0.6, label=f"channel {c}")
    ax[1].hist(xhat[:, c].ravel(), bins=20, alpha=0.6, label=f"channel {c}")
ax[0].set_title("inputs (rescaled per channel)")
ax[1].set_title(r"$\hat x$: zero mean, unit variance per channel")
ax[0].legend()
fig.tight_layout()

# %% [markdown]
# ## 7. Why it matters: training with and without BatchNorm
#
# A tiny network — six fully connected layers of 32 units with Swish, then a linear
# classifier — learns a three-armed spiral in 2-D by plain SGD (300 steps, batch 128,
# learning rate 0.2), all from the library's ops. Its weights start as He-initialised
# Gaussians times a **scale**, from 0.25 to 4. With BatchNorm, one sits between each linear
# layer and its Swish (a `(N, C)` batch is a `(N, C, 1, 1)` image; a normalised layer needs
# no bias, $\beta$ takes its place).
#
# Without BatchNorm the scale compounds over the layers: too small and the signal, and with
# it the gradient, fades before it reaches the first layer (the loss stays at
# $\ln 3 \approx 1.10$, chance); too large and the logits blow up within a few steps. With
# BatchNorm the forward pass does not depend on the weights' scale (each layer's output is
# re-standardised; only $\epsilon$ breaks the tie), so every scale trains. (The gradient with respect to those
# weights does, as $1/\text{scale}$: BatchNorm turns a bad initialisation into a different
# effective learning rate, which is far more forgiving.)

# %%
def spiral(n, arms, rng):
    """n points per arm of a noisy spiral; returns x (n * arms, 2) and labels."""
    r = np.tile(np.linspace(0.05, 1.0, n), arms)
    arm = np.repeat(np.arange(arms), n)
    t = 2 * np.pi * arm / arms + 3.5 * r + rng.normal(0, 0.15, n * arms)
    return np.c_[r * np.sin(t), r * np.cos(t)], arm


def train_mlp(X, labels, scale, batchnorm, depth=6, width=32, steps=300, lr=0.2, seed=1):
    """SGD on a depth-layer Swish MLP (optionally linear -> BN -> swish); the loss per step."""
    g = np.random.default_rng(seed)
    dims = [X.shape[1]] + [width] * depth
    ws = [g.standard_normal((dims[i + 1], dims[i])) * scale * np.sqrt(2 / dims[i])
          for i in range(depth)]
    head = g.standard_normal((int(labels.max()) + 1, width)) / np.sqrt(width)
    gammas, betas = [np.ones(width) for _ in ws], [np.zeros(width) for _ in ws]
    losses = []
    for _ in range(steps):
        batch = g.integers(0, len(X), 128)
        h, caches = X[batch], []
        for i in range(depth):
            z, c_lin = me.ops.linear_forward(h, ws[i], None)
            c_bn = None
            if batchnorm:
                z, c_bn = me.ops.batchnorm2d_forward(z[:, :, None, None], gammas[i], betas[i],
                                                     np.zeros(width), np.ones(width))
                z = z[:, :, 0, 0]
            h, c_sw = me.ops.swish_forward(z)
            caches.append((c_lin, c_bn, c_sw))
        logits, c_head = me.ops.linear_forward(h, head, None)
        if not np.all(np.isfinite(logits)):        # diverged: stop, record it
            losses.append(np.inf)
            break
        loss, d = me.ops.softmax_cross_entropy(logits, labels[batch])
        losses.append(loss)
        d, dhead, _ = me.ops.linear_backward(d, c_head)
        head -= lr * dhead
        for i in reversed(range(depth)):
            c_lin, c_bn, c_sw = caches[i]
            d = me.ops.swish_backward(d, c_sw)
            if batchnorm:
                d, dgamma_i, dbeta_i = me.ops.batchnorm2d_backward(d[:, :, None, None], c_bn)
                d = d[:, :, 0, 0]
                gammas[i] -= lr * dgamma_i
                betas[i] -= lr * dbeta_i
            d, dw_i, _ = me.ops.linear_backward(d, c_lin)
            ws[i] -= lr * dw_i
    return np.array(losses)


X_sp, labels_sp = spiral(200, 3, np.random.default_rng(2))
scales = (0.25, 0.5, 1.0, 2.0, 4.0)
curves = {}
with me.use_backend("numpy"), np.errstate(over="ignore", invalid="ignore"):  # tiny arrays
    for batchnorm in (False, True):
        for scale in scales:
            curves[batchnorm, scale] = train_mlp(X_sp, labels_sp, scale, batchnorm)

fig, ax = plt.subplots(1, 2, figsize=(11, 3.5), sharey=True)
for k, batchnorm in enumerate((False, True)):
    for scale in scales:
        c = curves[batchnorm, scale]
        line, = ax[k].semilogy(np.arange(len(c)), np.minimum(c, 1e3), label=f"scale {scale}")
        if not np.isfinite(c[-1]):
            ax[k].plot(len(c) - 1, 1e3, "x", ms=9, color=line.get_color())
    ax[k].set_title("with BatchNorm" if batchnorm else "without BatchNorm")
    ax[k].set_xlabel("SGD step")
ax[0].set_ylabel("training loss (x: diverged)")
ax[1].legend()
fig.tight_layout()
print(f"{'scale':>6} {'without BN':>22} {'with BN':>10}   (mean loss of the last 20 steps)")
for scale in scales:
    plain, normed = curves[False, scale], curves[True, scale]
    plain_text = f"{plain[-20:].mean():.3f}" if np.isfinite(plain[-1]) else f"diverged at step {len(plain)}"
    print(f"{scale:>6} {plain_text:>22} {normed[-20:].mean():>10.3f}")

# %%
final = {key: c[-20:].mean() for key, c in curves.items()}
assert final[False, 1.0] < 0.2                                  # the right scale trains
assert final[False, 0.25] > 1.0 and final[False, 0.5] > 1.0    # too small: stuck at chance
assert not np.isfinite(final[False, 2.0]) and not np.isfinite(final[False, 4.0])  # diverged
assert all(final[True, scale] < 0.1 for scale in scales)       # BatchNorm: every scale trains
first_losses = [curves[True, scale][0] for scale in scales]
assert np.ptp(first_losses) < 1e-2, first_losses               # same forward (up to eps)

# %% [markdown]
# ## Exercises
#
# 1. **Evaluation-mode backward.** Write
#    `bn_eval_backward(dy, gamma, running_mean, running_var, x, eps)` returning
#    `(dx, dgamma, dbeta)` for evaluation mode (there $\hat x$ uses the running mean and
#    variance, which are constants: $dx$ needs only the variance, $d\gamma$ needs $\hat x$
#    and so the mean and $x$ too). Compare with the library.
# 2. **Momentum conventions.** Starting from `running_mean = ones(C)`, run one training
#    forward pass with the library's `momentum=0.01`, and set `tf_style` to what TensorFlow's
#    update with *its* momentum 0.99 would give:
#    `tf_running = 0.99 · running + (1 − 0.99) · batch_mean`.

# %%
# Exercise 1: dy (N, C, H, W), gamma, running_mean, running_var (C,) -> dx, dgamma (C,), dbeta (C,)
def bn_eval_backward(dy, gamma, running_mean, running_var, x, eps):
    ### BEGIN SOLUTION
    # HINT: In evaluation mode μ and σ² are the running statistics, constants: of the graph
    #   of section 1 only x → x̂ → y is left, with one consumer per node.
    # HINT: x̂ = (x − running_mean) / √(running_var + ε), so
    #   dx = γ · dy / √(running_var + ε).
    # HINT: dγ = Σ dy·x̂ and dβ = Σ dy, summed over n, h, w down to shape (C,), with this x̂.
    istd_r = 1.0 / np.sqrt(running_var + eps)
    xhat_r = (x - pc(running_mean)) * pc(istd_r)
    dx = pc(gamma * istd_r) * dy
    dgamma = (dy * xhat_r).sum(axis=axes)
    dbeta = dy.sum(axis=axes)
    return dx, dgamma, dbeta
    ### END SOLUTION


# %%
# Exercise 2: TensorFlow's update of running_mean = ones(C) with the batch mean of x
### BEGIN SOLUTION
# HINT: The batch mean of each channel is x.mean(axis=axes), shape (C,).
tf_style = 0.99 * np.ones(C) + (1 - 0.99) * x.mean(axis=axes)
### END SOLUTION

# %%
### CHECK: exercise 1, the evaluation-mode backward against the library
rm, rv = rng.standard_normal(C), rng.random(C) + 0.5
_, c_eval = me.ops.batchnorm2d_forward(x, gamma, beta, rm.copy(), rv.copy(), training=False,
                                       eps=eps)
_, c_train = me.ops.batchnorm2d_forward(x, gamma, beta, rm.copy(), rv.copy(), eps=eps)
for got, want, train_mode, name in zip(bn_eval_backward(dy, gamma, rm, rv, x, eps),
                                       me.ops.batchnorm2d_backward(dy, c_eval),
                                       me.ops.batchnorm2d_backward(dy, c_train),
                                       ("dx", "dgamma", "dbeta")):
    print(me.compare(name, got, want))
    assert not (np.shape(got) == np.shape(train_mode)
                and me.rel_error(got, train_mode) < 1e-12 < me.rel_error(want, train_mode)), (
        f"your {name} is the training-mode one: evaluation uses the running statistics")
    assert me.rel_error(got, want) < 1e-12

# %%
### CHECK: exercise 2, PyTorch's momentum 0.01 is TensorFlow's 0.99
rm_pt = np.ones(C)
me.ops.batchnorm2d_forward(x, gamma, beta, rm_pt, np.ones(C), training=True, momentum=0.01)
print(me.compare("running_mean", rm_pt, tf_style))
assert tf_style is not ... and np.allclose(rm_pt, tf_style, rtol=1e-12)
print("all exercises pass")
