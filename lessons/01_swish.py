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
# # Lesson 01 — Sigmoid and Swish
#
# **What you will learn**
#
# * why the textbook `1 / (1 + exp(-x))` overflows, and how the library's sigmoid never does;
# * Swish, EfficientNet's activation, and its derivative, derived by hand;
# * how to check a hand-written derivative against finite differences, and how the library's
#   Swish saves memory by caching only its input.
#
# **Exercise version:** `exercises/01_swish.ipynb` leaves the derivatives of the sigmoid and
# of Swish, Swish's backward and the exercises to you, with hints; the `### CHECK` cells
# grade them and name the common mistakes (see `lessons/README.md`).
#
# Swish was found by an automated search over activation functions by Ramachandran, Zoph and
# Le, *Searching for Activation Functions* (2017); the same function had been proposed as the
# SiLU (Elfwing et al., 2018; Hendrycks & Gimpel's GELU paper, 2016). EfficientNet uses it after
# every convolution except two: the projection of each block, which stays linear, and the
# expand layer of squeeze-and-excitation, whose output goes through a sigmoid to become a
# gate (lesson 04; `minieffnet/ops/squeeze_excite.py`) (Tan & Le, 2019).
#
# $$\sigma(x) = \frac{1}{1 + e^{-x}}, \qquad \operatorname{swish}(x) = x\,\sigma(x).$$

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np

import minieffnet as me

rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The naive sigmoid overflows
#
# For large negative `x`, `exp(-x)` is larger than the largest float: `exp(800)` in float64, or
# already `exp(89)` in float32. NumPy returns `inf` with an *overflow* warning; `1 / (1 + inf)`
# then happens to be the right answer, 0, but the warning floods a training log and hides real
# problems. The other textbook form, `exp(x) / (1 + exp(x))`, fails the other way: for large
# **positive** `x` it computes `inf / inf = nan`.

# %%
def sigmoid_naive(x):
    return 1.0 / (1.0 + np.exp(-x))


def sigmoid_naive2(x):
    return np.exp(x) / (1.0 + np.exp(x))


xs32 = np.array([-100.0, -10.0, 0.0, 10.0, 100.0], dtype=np.float32)
with warnings.catch_warnings(record=True) as caught, np.errstate(over="warn", invalid="warn"):
    warnings.simplefilter("always")
    naive = sigmoid_naive(xs32)
    naive2 = sigmoid_naive2(xs32)
print("x            ", xs32)
print("1/(1+e^-x)   ", naive)
print("e^x/(1+e^x)  ", naive2)
for w in caught:
    print("warning:", w.message)
assert any("overflow" in str(w.message) for w in caught)
assert np.isnan(naive2[-1])

# %% [markdown]
# ## 2. The stable sigmoid
#
# Only ever exponentiate a non-positive number. With $z = e^{-|x|} \in (0, 1]$,
#
# $$\sigma(x) = \begin{cases} \dfrac{1}{1 + z} & x \ge 0 \\[2mm] \dfrac{z}{1 + z} & x < 0
# \end{cases}$$
#
# Both branches are the same function (multiply numerator and denominator of
# $1/(1+e^{-x})$ by $e^{x}$ for the second), but now nothing can overflow. (Underflow — a tiny
# `exp(-|x|)` rounding to 0 — is harmless: the answer is then exactly 0 or 1, which is right
# to working precision, so we only turn overflow and invalid operations into errors below.) This is exactly
# what `minieffnet/ops/activations.py` does, in NumPy and in its Numba kernel.

# %%
def sigmoid_stable(x):
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z)).astype(x.dtype)


extreme = np.array([-1e4, -800.0, -100.0, -1.0, 0.0, 1.0, 100.0, 800.0, 1e4])
with warnings.catch_warnings():
    warnings.simplefilter("error")          # any warning now raises...
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # ...and so does overflow
        mine = sigmoid_stable(extreme)
        for backend in ("numpy", "numba"):
            with me.use_backend(backend):
                lib, _ = me.ops.sigmoid_forward(extreme)
            print(me.compare(f"sigmoid {backend}", lib, mine))
            assert np.allclose(lib, mine, rtol=1e-15, atol=0)
print(mine)

# %% [markdown]
# In float32 the same holds; the library's output dtype follows the input.

# %%
x32 = rng.standard_normal(1000).astype(np.float32) * 50
with np.errstate(over="raise", invalid="raise"):
    s32, _ = me.ops.sigmoid_forward(x32)
assert s32.dtype == np.float32 and np.all((s32 >= 0) & (s32 <= 1))
print(me.compare("sigmoid float32", s32, sigmoid_stable(x32.astype(np.float64)), rtol=1e-6))

# %% [markdown]
# ## 3. Swish and its derivative
#
# <!-- BEGIN ANSWER -->
#
# First the sigmoid. With $\sigma = 1/(1 + e^{-x})$,
#
# $$\sigma'(x) = \frac{e^{-x}}{(1+e^{-x})^2} = \sigma(x)\,\frac{e^{-x}}{1+e^{-x}}
#   = \sigma(x)\,\bigl(1 - \sigma(x)\bigr).$$
#
# Then Swish by the product rule:
#
# $$\operatorname{swish}'(x) = \sigma(x) + x\,\sigma(x)\bigl(1-\sigma(x)\bigr)
#   = \sigma(x)\,\bigl(1 + x\,(1 - \sigma(x))\bigr).$$
#
# <!-- END ANSWER -->
#
# In a network the backward pass receives the upstream gradient `dout` $= \partial L /
# \partial\,\text{out}$ and returns `dx = dout * swish'(x)` (the chain rule, elementwise).

# %%
def swish_forward_mine(x):
    return x * sigmoid_stable(x)


def swish_backward_mine(dout, x):
    """dx = dout * swish'(x), for dout and x of one shape."""
    ### BEGIN SOLUTION
    # HINT: First σ′: write σ = 1/(1 + e^(−x)), differentiate, and express the result in σ
    #   itself: e^(−x)/(1 + e^(−x)) = 1 − σ.
    # HINT: swish(x) = x·σ(x) is a product: swish′ = (x)′·σ + x·σ′, two terms.
    # HINT: swish′(x) = σ(x) + x·σ(x)(1 − σ(x)) = σ(x)(1 + x(1 − σ(x))); the backward is
    #   dout times that (the chain rule, elementwise). Use sigmoid_stable.
    s = sigmoid_stable(x)
    return dout * s * (1 + x * (1 - s))
    ### END SOLUTION


x = rng.standard_normal((2, 3, 5, 5)) * 3
dout = rng.standard_normal(x.shape)
out_lib, cache = me.ops.swish_forward(x)
dx_lib = me.ops.swish_backward(dout, cache)
dx_num = me.numerical_gradient(lambda: swish_forward_mine(x), x, dout)
print(me.compare("swish out", out_lib, swish_forward_mine(x)))

# %%
### CHECK: your Swish backward against the library and finite differences
# Each common mistake is the derivative of x·σ(x) with one factor held fixed (differenced
# like the right one), or the right derivative without dout.
x_fixed = x.copy()
common_mistakes = {
    "σ(x) only: the product rule's second term, x·σ′(x), is missing":
        me.numerical_gradient(lambda: x * sigmoid_stable(x_fixed), x, dout),
    "x·σ′(x) only: the product rule's first term, σ(x), is missing":
        me.numerical_gradient(lambda: x_fixed * sigmoid_stable(x), x, dout),
    "swish′(x) without dout: the backward multiplies by the upstream gradient": dx_num / dout,
}
dx_mine = swish_backward_mine(dout, x)
for what, wrong in common_mistakes.items():
    assert me.rel_error(dx_mine, wrong) > 1e-6, f"your backward returns {what}"
print(me.compare("dx mine/lib", dx_mine, dx_lib))
print(me.compare("dx lib/numeric", dx_lib, dx_num))
print("relative error mine vs numeric:", me.rel_error(swish_backward_mine(dout, x), dx_num))
print("relative error lib  vs numeric:", me.rel_error(dx_lib, dx_num))
assert me.rel_error(swish_backward_mine(dout, x), dx_num) < 1e-8
assert me.rel_error(dx_lib, dx_num) < 1e-8

# %% [markdown]
# `check_gradients` wraps the same recipe for any op; we run it under both backends.

# %%
for backend in ("numpy", "numba"):
    with me.use_backend(backend):
        res = me.check_gradients(me.ops.swish_forward, me.ops.swish_backward, {"x": x})
        res_sig = me.check_gradients(me.ops.sigmoid_forward, me.ops.sigmoid_backward, {"x": x})
    print(backend, "swish  ", res["x"])
    print(backend, "sigmoid", res_sig["x"])
    assert res["x"].error < 1e-8 and res_sig["x"].error < 1e-8

# %% [markdown]
# ## 4. The memory-efficient Swish
#
# The backward needs $\sigma(x)$. We could cache it — one more activation-sized array per
# layer, and EfficientNet has dozens of Swish layers on large feature maps. The library caches
# only the input `x` (which the previous layer's output already holds) and recomputes
# $\sigma(x)$ in the backward: one `exp` per element traded for memory.

# %%
print("the cache IS the input array:", cache is x)
assert cache is x

# %% [markdown]
# ## 5. A picture
#
# Swish is smooth, unbounded above, bounded below, and — unlike ReLU — *non-monotonic*: it
# dips to a minimum of about −0.278 at x ≈ −1.28 before rising to 0. Its derivative is 0.5 at
# x = 0 and exceeds 1 only above x ≈ 1.28, peaking near 1.10 at x ≈ 2.40 and falling back
# towards 1 from above; left of the minimum it is slightly negative, down to about −0.10.
# Both pairs of numbers mirror each other because
# $\operatorname{swish}'(x) + \operatorname{swish}'(-x) = 1$ (add the two derivatives and use
# $\sigma(-x) = 1 - \sigma(x)$): swish′ crosses 1 exactly where the minimum sits on the other
# side, and its dip is its peak mirrored. The cell after the plot reads these numbers off the
# curves.

# %%
grid = np.linspace(-6, 6, 601)
swish_vals, c = me.ops.swish_forward(grid)
dswish = me.ops.swish_backward(np.ones_like(grid), c)   # dout = 1 gives swish'(x) itself

fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
ax[0].plot(grid, swish_vals, label="swish(x) = x σ(x)")
ax[0].plot(grid, np.maximum(grid, 0), "--", label="ReLU", alpha=0.6)
ax[0].plot(grid, me.ops.sigmoid_forward(grid)[0], ":", label="σ(x)")
ax[0].set_title("Swish")
ax[1].plot(grid, dswish, label="swish'(x)")
ax[1].plot(grid, (grid > 0).astype(float), "--", label="ReLU'", alpha=0.6)
ax[1].set_title("derivative")
for a in ax:
    a.axhline(0, color="k", lw=0.5)
    a.axvline(0, color="k", lw=0.5)
    a.legend()
fig.tight_layout()

# %% [markdown]
# The numbers quoted above, from the library's Swish. On [0, 2] swish′ rises monotonically
# from 0.5 past 1, so the crossing swish′(x) = 1 can be read off a fine grid by
# interpolation.

# %%
def dswish_lib(x):
    _, c = me.ops.swish_forward(x)
    return me.ops.swish_backward(np.ones_like(x), c)


i_min, i_peak, i_dip = swish_vals.argmin(), dswish.argmax(), dswish.argmin()
print(f"minimum of swish: {swish_vals[i_min]:.4f} at x = {grid[i_min]:.2f}")
print(f"swish'(0) = {dswish_lib(np.array([0.0]))[0]:.3f}; peak of swish': {dswish[i_peak]:.4f} "
      f"at x = {grid[i_peak]:.2f}; dip: {dswish[i_dip]:.4f} at x = {grid[i_dip]:.2f}")
rising = np.linspace(0.0, 2.0, 200_001)
d_rising = dswish_lib(rising)
assert np.all(np.diff(d_rising) > 0)                       # monotonic: interpolation is safe
x_one = np.interp(1.0, d_rising, rising)
print(f"swish'(x) = 1 at x = {x_one:.4f} (swish' there: {dswish_lib(np.array([x_one]))[0]:.8f})")
assert abs(swish_vals[i_min] + 0.278) < 5e-4 and abs(grid[i_min] + 1.28) < 0.02
assert dswish_lib(np.array([0.0]))[0] == 0.5
assert abs(dswish[i_peak] - 1.10) < 5e-3 and abs(grid[i_peak] - 2.40) < 0.02
assert abs(dswish[i_dip] + 0.10) < 5e-3 and np.allclose(dswish + dswish[::-1], 1)
assert abs(x_one - 1.28) < 5e-3 and abs(dswish_lib(np.array([x_one]))[0] - 1) < 1e-8
assert abs(dswish_lib(np.array([-x_one]))[0]) < 1e-8       # the mirror: swish's minimum
assert dswish[(grid > 0) & (grid < x_one)].max() < 1 < dswish[grid > x_one].min()

# %% [markdown]
# ## Exercises
#
# 1. **The minimum of Swish.** Find `x_min`, the point where swish'(x) = 0, to 1e-10 by
#    bisection on [−3, −0.5] using *your* derivative (`swish_backward_mine` with `dout = 1`).
#    The library's backward must then be (almost) zero there too.
# 2. **Swish-β.** Ramachandran et al. also propose a trainable slope:
#    $f(x, \beta) = x\,\sigma(\beta x)$. Derive $\partial f/\partial x$ and
#    $\partial f/\partial\beta$, implement them as `dswishbeta_dx(x, beta)` and
#    `dswishbeta_dbeta(x, beta)`, and check them against finite differences.
#    (Hint: write $s = \sigma(\beta x)$; then $\partial s / \partial u = s(1-s)$ with $u = \beta x$.)

# %%
# Exercise 1: the minimum of Swish, by bisection on [-3, -0.5] with your swish_backward_mine
lo, hi = -3.0, -0.5
### BEGIN SOLUTION
# HINT: swish′ is negative left of the minimum and positive right of it; dout = 1 makes
#   swish_backward_mine(np.array(1.0), np.array(mid)) swish′(mid) itself.
# HINT: Halve [lo, hi] at each step, keeping the half whose ends have swish′ of opposite
#   signs; 100 halvings take the interval far below 1e-10. x_min is its midpoint.
for _ in range(100):
    mid = 0.5 * (lo + hi)
    if swish_backward_mine(np.array(1.0), np.array(mid)) < 0:   # still descending
        lo = mid
    else:
        hi = mid
x_min = 0.5 * (lo + hi)
### END SOLUTION


# %%
# Exercise 2: the two derivatives of Swish-beta, f(x, beta) = x * sigmoid(beta * x)
def dswishbeta_dx(x, beta):
    ### BEGIN SOLUTION
    # HINT: With s = σ(βx), f = x·s is a product again: ∂f/∂x = s + x·∂s/∂x.
    # HINT: ∂s/∂x = s(1 − s)·β: the chain rule through u = βx brings the factor β.
    s = sigmoid_stable(beta * x)
    return s + beta * x * s * (1 - s)
    ### END SOLUTION


# %%
def dswishbeta_dbeta(x, beta):
    ### BEGIN SOLUTION
    # HINT: Only s = σ(βx) depends on β: ∂f/∂β = x·∂s/∂β.
    # HINT: ∂s/∂β = s(1 − s)·x: the chain rule through u = βx brings the factor x.
    s = sigmoid_stable(beta * x)
    return x * x * s * (1 - s)
    ### END SOLUTION


# %%
### CHECK: exercise 1, the minimum of Swish
assert x_min is not ..., "find x_min first"
print(f"x_min = {x_min:.10f}, swish(x_min) = {x_min * sigmoid_stable(np.array(x_min)):.6f}")
assert min(abs(x_min + 3), abs(x_min + 0.5)) > 1e-6, (
    "x_min is an end of [-3, -0.5]: your bisection keeps the wrong half")
assert abs(x_min - (-1.2784645428)) < 1e-8
_, c = me.ops.swish_forward(np.array([x_min]))
assert abs(me.ops.swish_backward(np.array([1.0]), c)[0]) < 1e-9

# %%
### CHECK: exercise 2, Swish-beta's derivatives against finite differences
xb = rng.standard_normal(20) * 3
beta = np.array([1.7])
up = np.ones_like(xb)
num_dx = me.numerical_gradient(lambda: xb * sigmoid_stable(beta * xb), xb, up)
num_db = me.numerical_gradient(lambda: xb * sigmoid_stable(beta * xb), beta, up)
print(me.compare("df/dx", dswishbeta_dx(xb, beta), num_dx))
assert me.rel_error(dswishbeta_dx(xb, beta), num_dx) < 1e-8
print(me.compare("df/dbeta, summed", dswishbeta_dbeta(xb, beta).sum(keepdims=True), num_db))
assert me.rel_error(dswishbeta_dbeta(xb, beta).sum(keepdims=True), num_db) < 1e-8
# and with beta = 1 it is the library's Swish derivative
_, c = me.ops.swish_forward(xb)
assert me.rel_error(dswishbeta_dx(xb, 1.0), me.ops.swish_backward(up, c)) < 1e-12
print("all exercises pass")
