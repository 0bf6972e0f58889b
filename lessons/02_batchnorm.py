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
# Reference: Ioffe & Szegedy, *Batch Normalization: Accelerating Deep Network Training by
# Reducing Internal Covariate Shift* (ICML 2015), Algorithm 1. EfficientNet follows every
# convolution with BatchNorm.

# %%
import matplotlib.pyplot as plt
import numpy as np

import minieffnet as me

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

mu = x.mean(axis=axes, keepdims=True)          # (1, C, 1, 1)
xc = x - mu                                    # (N, C, H, W)
var = (xc ** 2).mean(axis=axes, keepdims=True) # (1, C, 1, 1), biased: divide by m
istd = (var + eps) ** -0.5                     # (1, C, 1, 1)
xhat = xc * istd                               # (N, C, H, W)
y = pc(gamma) * xhat + pc(beta)                # (N, C, H, W)

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
# | node | forward | backward |
# |---|---|---|
# | output | $y = \gamma\hat x + \beta$ | $d\beta = \sum dy$, $d\gamma = \sum dy\,\hat x$, $d\hat x = \gamma\,dy$ |
# | normalise | $\hat x = x_c \cdot \text{istd}$ | $d\,\text{istd} = \sum d\hat x\,x_c$, $\;dx_c \mathrel{+}= d\hat x\cdot\text{istd}$ |
# | inverse std | $\text{istd} = (\text{var} + \epsilon)^{-1/2}$ | $d\,\text{var} = -\tfrac12(\text{var}+\epsilon)^{-3/2}\, d\,\text{istd}$ |
# | variance | $\text{var} = \tfrac1m \sum x_c^2$ | $dx_c \mathrel{+}= \tfrac{2}{m}\,x_c\, d\,\text{var}$ |
# | centre | $x_c = x - \mu$ | $d\mu = -\sum dx_c$, $\;dx \mathrel{+}= dx_c$ |
# | mean | $\mu = \tfrac1m\sum x$ | $dx \mathrel{+}= \tfrac1m\, d\mu$ |
#
# $x_c$ has two consumers ($\hat x$ and var), so its gradient has two terms; $x$ has two
# consumers ($x_c$ and $\mu$), so it too has two.

# %%
dy = rng.standard_normal(y.shape)
S = lambda a: a.sum(axis=axes, keepdims=True)   # sum over n, h, w per channel

dbeta = S(dy)
dgamma = S(dy * xhat)
dxhat = pc(gamma) * dy
distd = S(dxhat * xc)
dxc = dxhat * istd                      # path 1: through xhat
dvar = -0.5 * (var + eps) ** -1.5 * distd
dxc = dxc + 2.0 / m * xc * dvar         # path 2: through var
dmu = -S(dxc)
dx = dxc + dmu / m                      # x feeds xc directly and mu

# %% [markdown]
# ### Checking every intermediate
#
# How do we check $d\,\text{var}$ numerically? Treat `var` as if it were an input: write the
# rest of the forward pass as a function *of it* (everything upstream held fixed), perturb
# its entries, and difference $L$. The node's gradient from backprop must equal that
# derivative — for every node of the graph.

# %%
rest_of_forward = {
    # node: (its value, the forward pass from that node on, reading the node's array)
    "xhat": (xhat, lambda v: pc(gamma) * v + pc(beta)),
    "istd": (istd, lambda v: pc(gamma) * (xc * v) + pc(beta)),
    "var":  (var,  lambda v: pc(gamma) * (xc * (v + eps) ** -0.5) + pc(beta)),
    "xc":   (xc,   lambda v: pc(gamma) * (v * ((v ** 2).mean(axis=axes, keepdims=True) + eps) ** -0.5) + pc(beta)),
    "mu":   (mu,   lambda v: pc(gamma) * ((x - v) * (((x - v) ** 2).mean(axis=axes, keepdims=True) + eps) ** -0.5) + pc(beta)),
    "x":    (x,    lambda v: pc(gamma) * ((v - v.mean(axis=axes, keepdims=True)) * (v.var(axis=axes, keepdims=True) + eps) ** -0.5) + pc(beta)),
}
ours = {"xhat": dxhat, "istd": distd, "var": dvar, "xc": dxc, "mu": dmu, "x": dx}
errors = {}
for name, (value, f) in rest_of_forward.items():
    node = value.copy()                       # perturbed in place by numerical_gradient
    numeric = me.numerical_gradient(lambda: f(node), node, dy)
    errors[name] = me.rel_error(ours[name], numeric)
    print(me.compare(f"d{name}", ours[name], numeric, rtol=1e-6, atol=1e-8),
          f" rel.err {errors[name]:.1e}")
assert all(e < 1e-7 for e in errors.values()), errors

# %% [markdown]
# And against the library (both backends), for the three gradients it returns:

# %%
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
# Substituting the steps into each other (and using $x_c\,\text{istd} = \hat x$,
# $\sum \hat x = 0$):
#
# $$d\mu = -\text{istd}\sum d\hat x \qquad (\text{the } d\,\text{var} \text{ term drops out since } \textstyle\sum x_c = 0)$$
#
# $$dx = \frac{\gamma\,\text{istd}}{m}\Bigl(m\,dy - \sum dy - \hat x \sum dy\,\hat x\Bigr)
#      = \frac{\gamma\,\text{istd}}{m}\bigl(m\,dy - d\beta - \hat x\, d\gamma\bigr).$$
#
# Three terms, one per path: the direct one, the one through the mean, the one through the
# variance. This is what `minieffnet/ops/batchnorm.py` computes (its Numba kernel in two passes
# over memory, recomputing $\hat x$ instead of caching it).

# %%
dx_compact = pc(gamma) * istd / m * (m * dy - dbeta - xhat * dgamma)
print(me.compare("dx compact", dx_compact, dx))
assert me.rel_error(dx_compact, dx) < 1e-12

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
# ## Exercises
#
# 1. **Evaluation-mode backward.** Write `bn_eval_backward(dy, gamma, running_var, eps)`
#    returning `(dx, dgamma, dbeta)` for evaluation mode (there $\hat x$ uses the running
#    mean and variance, which are constants). Compare with the library.
# 2. **Momentum conventions.** Starting from `running_mean = ones(C)`, run one training
#    forward pass with the library's `momentum=0.01`, and set `tf_style` to what TensorFlow's
#    update with *its* momentum 0.99 would give:
#    `tf_running = 0.99 · running + (1 − 0.99) · batch_mean`.

# %%
# --- solution (replace with your own) ---------------------------------------------------
def bn_eval_backward(dy, gamma, running_mean, running_var, x, eps):
    istd_r = 1.0 / np.sqrt(running_var + eps)
    xhat_r = (x - pc(running_mean)) * pc(istd_r)
    dx = pc(gamma * istd_r) * dy
    dgamma = (dy * xhat_r).sum(axis=axes)
    dbeta = dy.sum(axis=axes)
    return dx, dgamma, dbeta


rm_tf = np.ones(C)
batch_mean = x.mean(axis=axes)
tf_style = 0.99 * rm_tf + (1 - 0.99) * batch_mean

# %%
# --- check ---------------------------------------------------------------------------------
rm, rv = rng.standard_normal(C), rng.random(C) + 0.5
_, c_eval = me.ops.batchnorm2d_forward(x, gamma, beta, rm.copy(), rv.copy(), training=False,
                                       eps=eps)
for got, want, name in zip(bn_eval_backward(dy, gamma, rm, rv, x, eps),
                           me.ops.batchnorm2d_backward(dy, c_eval), ("dx", "dgamma", "dbeta")):
    print(me.compare(name, got, want))
    assert me.rel_error(got, want) < 1e-12

rm_pt = np.ones(C)
me.ops.batchnorm2d_forward(x, gamma, beta, rm_pt, np.ones(C), training=True, momentum=0.01)
print(me.compare("running_mean", rm_pt, tf_style))
assert np.allclose(rm_pt, tf_style, rtol=1e-12)
print("all exercises pass")
