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
# # Lesson 00 — A tour of minieffnet
#
# **What you will learn**
#
# * what the package holds and where each layer's forward, backward, test and lesson live;
# * the one convention every op follows: `out, cache = op_forward(...)` and
#   `grads = op_backward(dout, cache)` (CS231n's style);
# * the two backends — a readable NumPy *reference* and a fast *Numba* path — and how to
#   switch between them;
# * how to build EfficientNet-B0, run a forward and a backward pass, and read its parameters;
# * the two tools every later lesson uses: `me.compare(...)` (makemore's `cmp()`) and
#   `me.check_gradients(...)` (finite differences).
#
# EfficientNet is the network of Tan & Le, *EfficientNet: Rethinking Model Scaling for
# Convolutional Neural Networks* (ICML 2019). Everything here is NumPy plus Numba: no autograd,
# every backward pass is written by hand — and checked.

# %%
import inspect
import os
import time

import numpy as np

import minieffnet as me

print("minieffnet", me.__version__)
print("active backend:", me.get_backend())

# %% [markdown]
# ## 1. What is in the package
#
# The package is layered; data flows top to bottom and nothing imports upward:
#
# | layer | what it holds | read it when |
# |---|---|---|
# | `minieffnet/ops/` | pure functions `<op>_forward(...) -> (out, cache)` and `<op>_backward(dout, cache)` | you want the maths of one layer |
# | `minieffnet/nn/` | `Module`, `Parameter`, layers that own weights and call the ops | you want to build a network |
# | `minieffnet/model.py` | `MBConv` and `EfficientNet`, built from a config | lessons 05 and 06 |
# | `minieffnet/scaling.py` | Table 1 as data, B0–B7 coefficients, compound scaling, parameter/FLOP counts | lessons 06 and 07 |
# | `minieffnet/gradcheck.py` | `numerical_gradient`, `check_gradients`, `rel_error`, `compare` | every lesson |
# | `minieffnet/backend.py` | `use_backend("numpy" / "numba")` | comparing reference and fast path |
#
# Every op has a test file named after it in `tests/`, and most have a lesson that derives them:
#
# | op | source | test | lesson |
# |---|---|---|---|
# | `sigmoid_*`, `swish_*` | `ops/activations.py` | `tests/test_activations.py` | 01 |
# | `batchnorm2d_*` | `ops/batchnorm.py` | `tests/test_batchnorm.py` | 02 |
# | `depthwise_conv2d_*`, `conv2d_*`, `pointwise_conv2d_*` | `ops/depthwise.py`, `ops/conv.py` | `tests/test_depthwise.py`, `tests/test_conv.py` | 03 |
# | `squeeze_excite_*` | `ops/squeeze_excite.py` | `tests/test_squeeze_excite.py` | 04 |
# | `drop_connect_*`, `dropout_*` | `ops/regularization.py` | `tests/test_regularization.py` | 05 |
# | `linear_*`, `global_avg_pool_*`, `softmax_cross_entropy` | `ops/linear.py`, `ops/pooling.py`, `ops/loss.py` | `tests/test_linear_pool_loss.py` | – (06 runs pooling and the classifier as B0's head; 08 derives the loss) |
#
# Linear layers and pooling have no lesson of their own: their backward passes are a few lines
# in `ops/linear.py` and `ops/pooling.py`, checked against finite differences by
# `tests/test_registry.py` (every op of the registry) and `tests/test_linear_pool_loss.py`.
# Lesson 06 runs them as the end of B0; lesson 08 derives the label-smoothed loss and its
# gradient $p - q$.
#
# You do not have to trust the table: Python can tell us where each function is defined.

# %%
package_root = os.path.dirname(me.__file__)
ops = sorted(name for name in dir(me.ops) if name.endswith(("_forward", "_backward")))
for name in ops:
    path = os.path.relpath(inspect.getsourcefile(getattr(me.ops, name)), package_root)
    print(f"{name:<28} minieffnet/{path}")

# %% [markdown]
# Lessons and users rely on a fixed set of ops: the public API of `minieffnet.ops`, which
# `minieffnet/ops/__init__.py` exports and the table above lists. Let us check that every
# one of them exists as a forward/backward pair (this cell fails if the library lost one).

# %%
promised = ["swish", "sigmoid", "batchnorm2d", "depthwise_conv2d", "conv2d", "squeeze_excite",
            "linear", "global_avg_pool", "dropout", "drop_connect"]
missing = [f"{op}_{d}" for op in promised for d in ("forward", "backward")
           if not callable(getattr(me.ops, f"{op}_{d}", None))]
assert not missing, f"missing ops: {missing}"
assert callable(me.ops.softmax_cross_entropy)
print(f"all {2 * len(promised)} promised forward/backward functions are there, "
      "plus softmax_cross_entropy")

# %% [markdown]
# ## 2. The `(out, cache)` convention
#
# A forward pass returns its output **and** a *cache*: whatever its backward pass needs. The
# backward takes the upstream gradient `dout = ∂L/∂out` and the cache and returns
# `∂L/∂input` (and the gradients of any weights). Read the docstring: it gives every shape.

# %%
print(me.ops.swish_forward.__doc__)

rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 4, 4))
out, cache = me.ops.swish_forward(x)
dout = rng.standard_normal(out.shape)
dx = me.ops.swish_backward(dout, cache)
print("x", x.shape, x.dtype, "-> out", out.shape, out.dtype, "; dx", dx.shape)
assert out.shape == dx.shape == x.shape and out.dtype == x.dtype

# %% [markdown]
# ## 3. Two backends: the NumPy reference and the Numba fast path
#
# Every op has a plain NumPy implementation (short, readable — what the lessons show) and,
# where speed matters, a Numba kernel. One dispatch point, `minieffnet/backend.py`, picks which
# one runs. `use_backend` switches temporarily; the two must agree, and `me.compare` prints
# how closely, one line per array, like the `cmp()` of Karpathy's makemore part 4:
# *exact* (bit for bit), *approximate* (`np.allclose`), the largest absolute difference, and
# the shape.

# %%
x32 = rng.standard_normal((4, 16, 8, 8)).astype(np.float32)
with me.use_backend("numpy"):
    ref, _ = me.ops.swish_forward(x32)
with me.use_backend("numba"):
    fast, _ = me.ops.swish_forward(x32)   # the first Numba call compiles (or loads the cache)
print(me.compare("swish numpy/numba", fast, ref))
assert np.allclose(fast, ref, rtol=1e-6, atol=1e-7)
print("backend after the with-blocks:", me.get_backend())

# %% [markdown]
# ## 4. Build EfficientNet-B0 and run it
#
# `me.efficientnet(variant, num_classes, preset=...)` builds B0 … B7. Preset `"imagenet"` is the
# paper's network for 224×224 images; preset `"cifar"` keeps every layer of the block table but
# changes two strides so that a 32×32 image is not squeezed to 1×1 (see
# `minieffnet/scaling.py`). We use the CIFAR preset and 10 classes to keep this fast.
#
# The model takes NCHW `float32` images, like PyTorch, and returns logits `(N, num_classes)`.

# %%
model = me.efficientnet("b0", num_classes=10, preset="cifar", seed=0)
print(type(model).__name__, model.config.name, "| parameters:", me.count_parameters(model))
n_built = sum(p.data.size for p in model.parameters())
assert n_built == me.count_parameters(model), "analytic count disagrees with the built model"

images = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
t0 = time.perf_counter()
logits = model(images)   # training mode: BatchNorm uses batch statistics
print(f"logits {logits.shape} {logits.dtype}  (first call, includes compilation: "
      f"{time.perf_counter() - t0:.1f} s)")
assert logits.shape == (2, 10) and logits.dtype == np.float32

# %% [markdown]
# A model is a tree of modules with dotted names, like PyTorch's. Here are the first few
# parameters and the first MBConv block:

# %%
for name, p in list(model.named_parameters())[:6]:
    print(f"{name:<32} {p.data.shape}")
print("...")
print("blocks.1 children:", [name for name, _ in model.blocks[1].named_children()])

# %% [markdown]
# ## 5. A backward pass
#
# `softmax_cross_entropy(logits, labels)` returns the loss **and** `∂loss/∂logits`; the model's
# `backward` pushes it through every layer in reverse, fills `p.grad` for every parameter and
# returns `∂loss/∂images`.

# %%
labels = np.array([3, 7])
loss, dlogits = me.ops.softmax_cross_entropy(logits, labels)
model.zero_grad()
dimages = model.backward(dlogits)
print(f"loss {loss:.4f}  (a uniform guess over 10 classes would give ln 10 = {np.log(10):.4f})")
print("dimages", dimages.shape)
no_grad = [n for n, p in model.named_parameters() if p.grad is None or p.grad.shape != p.data.shape]
assert not no_grad, f"parameters without a gradient: {no_grad[:5]}"
print("every one of", len(model.parameters()), "parameter arrays received a gradient")

# %% [markdown]
# ## 6. Evaluation mode and the numpy backend
#
# `model.eval()` switches BatchNorm to its running statistics and turns dropout and stochastic
# depth off, so the output no longer depends on the rest of the batch or on random draws.
# In evaluation mode the whole network must give the same logits under both backends.

# %%
_ = model.eval()
with me.use_backend("numpy"):
    logits_ref = model(images)
logits_fast = model(images)
print(me.compare("logits numpy/numba", logits_fast, logits_ref, rtol=1e-4, atol=1e-5))
assert np.allclose(logits_fast, logits_ref, rtol=1e-4, atol=1e-5)

# %% [markdown]
# ## 7. Checking a gradient
#
# Every backward in this library is checked against *centred finite differences* in float64,
#
# $$\frac{\partial L}{\partial x_i} \approx \frac{L(x + h e_i) - L(x - h e_i)}{2h},\qquad
#   L = \sum \text{out} \odot \text{dout},$$
#
# with a **random** upstream gradient `dout` (lesson 02 shows why a constant one can lie), and
# the relative error `max|a − n| / max(|a| + |n|)`. `check_gradients` does all of it for an op:

# %%
results = me.check_gradients(me.ops.swish_forward, me.ops.swish_backward,
                             {"x": rng.standard_normal((2, 3, 4, 4))})
for r in results.values():
    print(r)
assert results["x"].error < 1e-7

# %% [markdown]
# ## Exercises
#
# 1. **Residual blocks.** An MBConv block adds its input to its output only when the shapes
#    match (stride 1 and as many output as input channels). Count how many of B0's blocks
#    have this skip connection, once from the built model (`block.use_residual`) and once from
#    the config (`model.config.blocks`, each with a `has_residual` property).
# 2. **Train versus eval.** Show that in evaluation mode two forward passes give identical
#    logits and leave the state (`model.state_dict()`) untouched, while one forward pass in
#    training mode changes BatchNorm's running statistics. Set `eval_repeatable`,
#    `eval_state_unchanged` and `train_state_changed` to booleans.

# %%
# --- solution (replace with your own) ---------------------------------------------------
n_residual_model = sum(bool(block.use_residual) for block in model.blocks)
n_residual_config = sum(b.has_residual for b in model.config.blocks)

_ = model.eval()
state0 = model.state_dict()
a, b = model(images), model(images)
eval_repeatable = bool(np.array_equal(a, b))
eval_state_unchanged = all(np.array_equal(v, model.state_dict()[k]) for k, v in state0.items())
_ = model.train()
model(images)
train_state_changed = any(not np.array_equal(v, model.state_dict()[k]) for k, v in state0.items())

# %%
# --- check ---------------------------------------------------------------------------------
assert n_residual_model == n_residual_config == 9, (n_residual_model, n_residual_config)
assert eval_repeatable and eval_state_unchanged and train_state_changed
print("all exercises pass")
