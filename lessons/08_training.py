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
# # Lesson 08 — Training: the step by hand, then the Trainer
#
# **What you will learn**
#
# * the four lines of one training step — forward, softmax cross-entropy with label
#   smoothing, `model.backward`, an SGD update — written by hand, and that they make the loss
#   fall on a small batch of the built-in synthetic data;
# * what label smoothing does to the loss: its floor is no longer 0 but the entropy of the
#   smoothed target, and a *too* confident prediction is penalised;
# * the one-cycle learning-rate schedule (Smith & Topin, 2019) the quick start trains with;
# * how `minieffnet.train.Trainer` packages the same step with data loading, augmentation,
#   evaluation, checkpoints and a `metrics.jsonl` per run — and how to read and plot it;
# * what the project's 30-minute CIFAR-10 recipe (`minieffnet train --recipe cifar10-30min`)
#   reached on two cores, read from its committed records and curve;
# * **class activation maps** (Zhou et al., CVPR 2016; the paper's Figure 7): where in the
#   image a trained network finds the evidence for a class, computed with `minieffnet.cam`
#   — and why the map's mean *is* the class's logit (minus the bias).
#
# References: Szegedy et al., *Rethinking the Inception Architecture* (CVPR 2016) for label
# smoothing; Smith & Topin, *Super-Convergence* (2019) for one-cycle; Tan & Le (2019) §5.2
# for EfficientNet's own ImageNet recipe (RMSProp, exponential decay).
#
# Everything here is tiny — a network of about 34 000 parameters on a few hundred 32×32
# images — so that it runs in seconds on two cores.

# %%
import dataclasses
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import minieffnet as me
from minieffnet.experiments import read_results
from minieffnet.optim import SGD
from minieffnet.optim.schedules import one_cycle
from minieffnet.recipes import recipe_config
from minieffnet.train import TrainConfig, Trainer

rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Data and a tiny network
#
# `me.data.load_synthetic` generates the built-in data set: 32×32 RGB images of ten classes
# of procedurally drawn shapes (no download needed). The images are stored as uint8 HWC; the
# network wants float NCHW normalised by the training set's channel mean and standard
# deviation, which `to_float_nchw` does.
#
# The network is a B0 with the `cifar` preset (a stem of stride 1, for 32-pixel inputs),
# shrunk with `width=0.1, depth=0.1` — the same building blocks as lessons 05–07, just fewer
# and narrower.

# %%
train_set, test_set = me.data.load_synthetic(n_train=256, n_test=128, seed=0)
mean, std = train_set.normalization()
x = me.data.to_float_nchw(train_set.images[:64], mean, std)
y = train_set.labels[:64]
print("images", train_set.images.shape, train_set.images.dtype, "->", x.shape, x.dtype)
print("classes", train_set.class_names)

fig, ax = plt.subplots(1, 8, figsize=(12, 1.8))
for i, a in enumerate(ax):
    a.imshow(train_set.images[i])
    a.set_title(train_set.class_names[y[i]], fontsize=8)
    a.axis("off")

model = me.efficientnet("b0", num_classes=10, preset="cifar", width=0.1, depth=0.1, seed=0)
n_params = sum(p.data.size for p in model.parameters())
print(f"{n_params} parameters, input resolution {model.config.resolution}")
assert model.config.resolution == 32 and n_params < 50_000

# %% [markdown]
# ## 2. The loss, with label smoothing
#
# Softmax cross-entropy compares the predicted distribution $p = \operatorname{softmax}(z)$
# with a target distribution $q$. Without smoothing $q$ is one-hot on the label $y$. Label
# smoothing with $\varepsilon$ mixes in the uniform distribution over the $K$ classes:
#
# $$q_j = (1-\varepsilon)\,[j = y] + \frac{\varepsilon}{K}, \qquad
#   L = -\sum_j q_j \log p_j, \qquad \frac{\partial L}{\partial z_j} = p_j - q_j .$$
#
# The loss is smallest when $p = q$, where it equals the **entropy** of $q$:
#
# $$L_\text{min} = H(q) = -\Bigl(1-\varepsilon+\tfrac{\varepsilon}{K}\Bigr)
#   \log\Bigl(1-\varepsilon+\tfrac{\varepsilon}{K}\Bigr)
#   - (K-1)\,\tfrac{\varepsilon}{K}\log\tfrac{\varepsilon}{K} .$$
#
# So with $\varepsilon = 0.1$ and $K = 10$ the training loss can never fall below
# $\approx 0.50$, even for a network that is always right. And a network that puts margin
# $M$ between the true logit and all others (logits $M, 0, \dots, 0$) pays
#
# $$L(M) = \log\bigl(1 + (K-1)e^{-M}\bigr) + \varepsilon\,\frac{K-1}{K}\,M,$$
#
# which *grows* linearly in $M$: unlimited confidence is punished, which is the point — it
# keeps logits bounded and is a mild regulariser.

# %%
K, eps = 10, 0.1
labels = np.arange(K) % K                        # one sample per class
q = np.full((K, K), eps / K) + (1 - eps) * np.eye(K)
entropy = -(q[0] * np.log(q[0])).sum()
h_analytic = (-(1 - eps + eps / K) * np.log(1 - eps + eps / K)
              - (K - 1) * eps / K * np.log(eps / K))

# the "perfect" prediction p = q: logits log q
loss_perfect, d_perfect = me.ops.softmax_cross_entropy(np.log(q), labels, label_smoothing=eps)
print(f"loss at p = q: {loss_perfect:.10f}   H(q) analytic: {h_analytic:.10f}")
assert abs(loss_perfect - h_analytic) < 1e-12 and abs(entropy - h_analytic) < 1e-12
assert np.abs(d_perfect).max() < 1e-15          # and the gradient vanishes there

# a one-hot-confident prediction with margin M
margins = np.linspace(0, 40, 81)
loss_M = []
for M in margins:
    logits = M * np.eye(K)
    loss_M.append(me.ops.softmax_cross_entropy(logits, labels, eps)[0])
loss_M = np.array(loss_M)
analytic_M = np.log1p((K - 1) * np.exp(-margins)) + eps * (K - 1) / K * margins
print(me.compare("L(M) lib vs analytic", loss_M, analytic_M))
assert np.allclose(loss_M, analytic_M, rtol=1e-12, atol=1e-12)
loss_M0 = np.array([me.ops.softmax_cross_entropy(M * np.eye(K), labels, 0.0)[0] for M in margins])

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(margins, loss_M0, label="ε = 0 (→ 0)")
ax.plot(margins, loss_M, label="ε = 0.1 (grows again)")
ax.axhline(h_analytic, ls=":", color="k", label=f"floor H(q) = {h_analytic:.3f}")
ax.set_xlabel("margin M of the true logit")
ax.set_ylabel("loss")
ax.set_ylim(0, 3)
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## 3. The training step, by hand
#
# One step is four lines. The model keeps each layer's cache from the forward pass, so
# `model.backward(dlogits)` fills every parameter's `.grad`; the optimiser then updates
# `.data` in place. `zero_grad` first, because the layers *accumulate* into `.grad`.
#
# SGD with momentum $\mu$ (PyTorch's convention, which the library follows):
# $b \leftarrow \mu b + g$, $\theta \leftarrow \theta - \eta\, b$. On the very first step the
# buffer is $g$, so the update is exactly $-\eta g$ — we check that on one parameter.

# %%
opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
model.train()

opt.zero_grad()
logits = model(x)
loss0, dlogits = me.ops.softmax_cross_entropy(logits, y, label_smoothing=0.1)
model.backward(dlogits)
p = model.parameters()[0]
before, grad = p.data.copy(), p.grad.copy()
opt.step()
print(me.compare("first SGD step", p.data, before - 0.05 * grad))
assert np.allclose(p.data, before - 0.05 * grad, rtol=1e-6, atol=1e-7)
print(f"initial loss {loss0:.4f}  (log K = {np.log(K):.4f}: a random guess)")

# %% [markdown]
# Now repeat it on the same batch of 64 images. (That is *over-fitting* one batch — the
# classic first test of a training loop: if the loss will not fall here, something is
# broken.)

# %%
n_steps = 12
losses = [loss0]
for step in range(n_steps):
    opt.zero_grad()
    logits = model(x)                                                    # 1. forward
    loss, dlogits = me.ops.softmax_cross_entropy(logits, y, label_smoothing=0.1)  # 2. loss
    model.backward(dlogits)                                              # 3. backward
    opt.step()                                                           # 4. update
    losses.append(loss)
print(" ".join(f"{v:.3f}" for v in losses))
assert losses[-1] < losses[0] - 0.3, "the loss should fall when over-fitting one batch"
assert all(np.isfinite(losses))

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(losses, "o-")
ax.axhline(h_analytic, ls=":", color="k", label="label-smoothing floor")
ax.set_xlabel("step")
ax.set_ylabel("training loss (one batch)")
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## 4. The one-cycle schedule
#
# A constant rate is a poor compromise: large rates make fast progress early but cannot
# settle into a minimum; small ones are slow. One-cycle rises from `base_lr / 25` to the peak
# `base_lr` over the first 30 % of the steps (a warm-up: BatchNorm statistics and momentum
# buffers are still poor at the start), then anneals by a half-cosine to almost 0. It is a
# pure function of the step, so a resumed run lands on the same rate.

# %%
total = 200
lrs = np.array([one_cycle(s, total_steps=total, base_lr=0.1) for s in range(total)])
print(f"start {lrs[0]:.4f}, peak {lrs.max():.4f} at step {lrs.argmax()}, end {lrs[-1]:.2e}")
assert abs(lrs[0] - 0.1 / 25) < 1e-12 and abs(lrs.max() - 0.1) < 1e-12
assert lrs.argmax() == round(0.3 * total) - 1 and lrs[-1] < 1e-5

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(lrs)
ax.axvline(0.3 * total - 1, ls=":", color="k")
ax.set_xlabel("step")
ax.set_ylabel("learning rate")
ax.set_title("one_cycle(step, total_steps=200, base_lr=0.1)")
fig.tight_layout()

# %% [markdown]
# ## 5. The Trainer
#
# `minieffnet.train.Trainer` runs exactly this step (plus the schedule, weight decay on
# conv/linear weights only, and random crop + flip augmentation) over a `BatchLoader`, then
# evaluates on the test set after every epoch and appends a row to `metrics.jsonl`. A
# `TrainConfig` holds every setting; the run folder gets `config.json`, `checkpoint.npz`,
# `metrics.jsonl` and `curves.png`. We train the same tiny network for 2 epochs on 256
# images in a temporary folder.

# %%
run_dir = Path(tempfile.mkdtemp(prefix="minieffnet-lesson08-")) / "run"
cfg = TrainConfig(width=0.1, depth=0.1, train_size=256, test_size=128, epochs=2,
                  batch_size=64, lr=0.05, out_dir=str(run_dir))
trainer = Trainer(cfg, progress=False, verbose=False)
print(f"{trainer.steps_per_epoch} steps per epoch, schedule {cfg.schedule}, "
      f"smoothing {cfg.label_smoothing}")
history = trainer.fit()
print(sorted(p.name for p in run_dir.iterdir()))

rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
for r in rows:
    print({k: round(v, 4) if isinstance(v, float) else v
           for k, v in r.items() if k in ("epoch", "step", "lr", "train_loss", "test_loss",
                                          "test_top1")})
assert [r["epoch"] for r in rows] == [1, 2] and rows == history
assert rows[-1]["step"] == 2 * trainer.steps_per_epoch == 8
assert all(np.isfinite(r["train_loss"]) and r["train_loss"] > 0 for r in rows)
assert json.loads((run_dir / "config.json").read_text())["epochs"] == 2

# %% [markdown]
# The curves, from the metrics file (the Trainer also writes `curves.png` with
# `minieffnet.viz.plot_training_curves`). Two epochs of eight steps teach this network
# little; the point is the plumbing. Note that the test loss is computed with the *training*
# label smoothing, so both curves share the floor $H(q)$.

# %%
epochs = [r["epoch"] for r in rows]
fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
ax[0].plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
ax[0].plot(epochs, [r["test_loss"] for r in rows], "s-", label="test")
ax[0].axhline(h_analytic, ls=":", color="k", label="floor H(q)")
ax[0].set_ylabel("loss")
ax[1].plot(epochs, [100 * r["train_top1"] for r in rows], "o-", label="train top-1")
ax[1].plot(epochs, [100 * r["test_top1"] for r in rows], "s-", label="test top-1")
ax[1].set_ylabel("accuracy (%)")
for a in ax:
    a.set_xlabel("epoch")
    a.legend()
fig.tight_layout()
assert (run_dir / "curves.png").stat().st_size > 0

# %% [markdown]
# ## 6. Real data: CIFAR-10 in 30 minutes
#
# The same Trainer, from the command line, trains on CIFAR-10 (downloaded once into the
# user cache, or `--data-dir`). A real run takes tens of minutes on two cores, so here we
# only read what one produced: the project's recipe for two cores, one command
# (`minieffnet/recipes.py`; the write-up, with what each of its pieces buys, is the
# repository's `docs/recipe.md`):
#
# ```sh
# minieffnet train --recipe cifar10-30min --out runs/cifar10-30min
# minieffnet train --resume --out runs/cifar10-30min     # continue after Ctrl-C, bit for bit
# ```
#
# It trains a wider, deeper version of this lesson's network — the cifar preset at width
# 0.5, depth 0.5, 32 px — on all 50,000 training images with SGD-Nesterov, a triangular
# schedule peaking at lr 0.4, label smoothing 0.2 and progressive resizing (20 → 26 → 32 px
# over the run). It fixes no number of epochs: `--time-budget 30` first measures the
# machine's speed and fits as many epochs as 30 minutes hold, and the test set is
# evaluated once, after the last. On the machine of the recorded run that was **14 epochs
# and 88.6 % test top-1**, in 29.9 minutes for the whole command. On a VM about 30 % slower
# the same command fitted 10 epochs and reached 86.7 %: the recipe's accuracy depends on
# the machine's speed. The recorded run is `studies/cifar10-30min/final-lr04/`
# (`config.json`, `metrics.jsonl`), its curves `figures/cifar10_30min_lr04_curves.png`. We
# read them, check that the record is the recipe, and count the network with the library;
# the two numbers that are not in the record (the whole command's wall time, and the slower
# VM's run) are checked against `docs/recipe.md`.

# %%
REPO = Path(me.__file__).resolve().parent.parent     # the repository, for an editable install
recipe = dataclasses.asdict(recipe_config("cifar10-30min"))
recipe_net = me.make_config("b0", 10, preset=recipe["preset"], width=recipe["width"],
                            depth=recipe["depth"], resolution=recipe["resolution"])
print(f"the recipe's network: {me.count_parameters(recipe_net):,} parameters, "
      f"{me.count_flops(recipe_net) / 1e6:.1f} M multiply-adds per 32x32 image")
assert me.count_parameters(recipe_net) == 663_530 and recipe_net.resolution == 32
assert (recipe["optimizer"], recipe["nesterov"], recipe["schedule"], recipe["lr"],
        recipe["label_smoothing"], recipe["progressive_from"], recipe["progressive_stages"],
        recipe["time_budget"]) == ("sgd", True, "triangular", 0.4, 0.2, 20, 3, 30)

record = REPO / "studies" / "cifar10-30min" / "final-lr04"
curve_png = REPO / "figures" / "cifar10_30min_lr04_curves.png"
recipe_doc = REPO / "docs" / "recipe.md"
if record.exists():
    recorded = json.loads((record / "config.json").read_text())
    differ = sorted(k for k in recorded if recorded[k] != recipe.get(k))
    print(f"the record's settings differ from the recipe's only in {differ}: "
          f"{recorded['epochs']} epochs fitted (the recipe's cap: {recipe['epochs']})")
    assert differ == ["epochs", "out_dir"] and recorded["time_budget"] == 30
    run = [json.loads(line) for line in (record / "metrics.jsonl").read_text().splitlines()]
    for m in run:
        print(f"epoch {m['epoch']:2d}: lr {m['lr']:.3f}, train top-1 {100 * m['train_top1']:4.1f} %, "
              f"{m['images_per_s']:3.0f} img/s, {m['elapsed_s'] / 60:4.1f} min")
    last = run[-1]
    print(f"test, after the last epoch only: top-1 {100 * last['test_top1']:.1f} %, top-5 "
          f"{100 * last['test_top5']:.1f} % ({100 * last['test_tta_top1']:.1f} % top-1 with "
          f"flip + shift TTA)")
    assert [m["epoch"] for m in run] == list(range(1, recorded["epochs"] + 1))
    assert recorded["epochs"] == 14 and f"{100 * last['test_top1']:.1f}" == "88.6"
    assert all("test_top1" not in m for m in run[:-1])              # the test set: once
    assert last["elapsed_s"] < 30 * 60                              # inside the budget
    speeds = [np.mean([m["images_per_s"] for m in run[a:b]]) for a, b in ((0, 5), (5, 10), (10, 14))]
    assert speeds[0] > speeds[1] > speeds[2]                        # 20, 26, 32 px stages
    assert all(a["train_top1"] < b["train_top1"] for a, b in zip(run, run[1:]))
    assert abs(last["train_top1"] - last["test_top1"]) < 0.01       # within a point
if recipe_doc.exists():
    doc = " ".join(recipe_doc.read_text(encoding="utf-8").split())  # one line: no wrapping
    assert "88.6 % test top-1" in doc and "29.9 minutes of wall time for the whole command" in doc
    assert "fitted **10 epochs** and the run reached **86.7 %** test top-1" in doc
if curve_png.exists():
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.imshow(plt.imread(curve_png))
    ax.axis("off")
    ax.set_title("the recipe's run: CIFAR-10, cifar preset, width 0.5, depth 0.5, 14 epochs")
    fig.tight_layout()
else:
    print("figures/ not found: this is not a repository checkout")

# %% [markdown]
# Read it as a training run under a budget. The printed images per second fall in three
# steps — the 20, 26 and 32 px stages of progressive resizing — so the small early epochs
# buy the run its 14 epochs. The training accuracy (measured on augmented images, while
# the weights still move) rises every epoch and ends within a point of the test accuracy:
# with crop-and-flip augmentation, label smoothing and a learning rate that falls to zero
# only at the end, the network is not over-fitting, and more epochs would still help. The
# test accuracy has no curve: the recipe spends its 30 minutes training and evaluates
# once (its settings were chosen on a held-out split of the training images, never on the
# test set; `docs/recipe.md`). (The fastest CIFAR-10 trainers reach 94 % in about ten
# epochs with networks and recipes tuned for it; lesson 10's budget study shows this
# project's small network gaining several points with each doubling of its epochs.)
#
# ## 7. Class activation maps
#
# EfficientNet ends with global average pooling and one linear layer. Write $F_k(x, y)$ for
# channel $k$ of the last feature map (the head's output, $h \times w$) and $W, b$ for the
# classifier. Then the logit of class $c$ is
#
# $$z_c = \sum_k W_{ck}\,\frac{1}{hw}\sum_{x,y} F_k(x, y) + b_c
#       = \frac{1}{hw}\sum_{x,y} M_c(x, y) + b_c, \qquad M_c(x, y) = \sum_k W_{ck} F_k(x, y):$$
#
# the map $M_c$ says how much each location adds to class $c$'s score, and its mean plus the
# bias **is** the logit. That is a class activation map (Zhou et al. 2016), and the paper's
# Figure 7 uses it to show that compound-scaled networks attend to more relevant regions
# with more object detail. `minieffnet.cam.class_activation_maps(model, x)` returns the maps
# and the logits in one evaluation-mode pass; `upsample_cam` enlarges a map to the image;
# `plot_cams` draws maps over images, one column per model — the functions behind
# `minieffnet cam RUN... --test-images N`.
#
# We load the tiny run of section 5 back from its folder, as `minieffnet cam` does, and map
# six class-balanced test images. First the identity above, then the maps.

# %%
from minieffnet.cam import class_activation_maps, plot_cams, upsample_cam
from minieffnet.inference import load_trained_model, prepare_images

trained = load_trained_model(run_dir)
sample = test_set.balanced_subset(6)
x_cam = prepare_images(trained, list(sample.images))
cams, logits = class_activation_maps(trained.model, x_cam)
predicted = logits.argmax(axis=1)
bias = trained.model.classifier.bias.data
print(f"input {x_cam.shape} -> feature maps and CAMs {cams.shape}, logits {logits.shape}")
print(me.compare("mean(CAM) + bias vs logit", cams.mean(axis=(1, 2)) + bias[predicted],
                 logits[np.arange(6), predicted], rtol=1e-5, atol=1e-5))
assert np.allclose(cams.mean(axis=(1, 2)) + bias[predicted], logits[np.arange(6), predicted],
                   rtol=1e-5, atol=1e-5)
assert np.allclose(logits, trained.model.eval()(x_cam), rtol=1e-5, atol=1e-5)
heat = upsample_cam(cams, 32)
assert heat.shape == (6, 32, 32)

out_png = plot_cams(list(sample.images), [[c] for c in cams],
                    [[f"pred {trained.class_names[p]}"] for p in predicted], run_dir / "cam.png",
                    image_titles=[f"true {sample.class_names[y]}" for y in sample.labels])
fig, ax = plt.subplots(figsize=(5, 9))
ax.imshow(plt.imread(out_png))
ax.axis("off")
fig.tight_layout()

# %% [markdown]
# This network has seen 512 images and is close to guessing, so its maps show the
# mechanics — a 4×4 map (the cifar preset divides the side by 8) smoothly enlarged — not
# where a trained network looks. The project's real maps come from protocol v2 of lesson
# 10's scaling study: the base and the four 4× models (depth, width, resolution, compound)
# of seed 0 after 10 epochs on all of CIFAR-10, made with
# `minieffnet cam studies/cifar10-v2/trials/{base,depth-x4,width-x4,resolution-x4,compound-x4}-10ep-seed0 --test-images 6`
# (the checkpoints are not committed; the figure is). The cell prints each model's test
# top-1 from the study's records.

# %%
real_cam = REPO / "figures" / "cifar10_v2_10ep_cam_x4.png"
trials_csv = REPO / "studies" / "cifar10-v2" / "trials.csv"
cam_models = ["base-10ep", "depth-x4-10ep", "width-x4-10ep", "resolution-x4-10ep",
              "compound-x4-10ep"]
if trials_csv.exists():
    seed0 = {r["model"]: r for r in read_results(trials_csv) if r["seed"] == 0}
    cam_top1 = {m: seed0[m]["top1"] for m in cam_models}
    for m in cam_models:
        print(f"{m:>20} (seed 0, {seed0[m]['resolution']:g} px): test top-1 {100 * cam_top1[m]:.1f} %")
    assert (round(100 * min(cam_top1.values())), round(100 * max(cam_top1.values()))) == (72, 83)
if real_cam.exists():
    fig, ax = plt.subplots(figsize=(12, 12.5))
    ax.imshow(plt.imread(real_cam))
    ax.axis("off")
    fig.tight_layout()

# %% [markdown]
# Each model's map is drawn at its own resolution (the resolution-scaled network's maps have
# more cells). These networks reach 72–83 % top-1: trained, but after 10 epochs far from
# converged, and six images are an illustration, not a measurement. In these six the
# resolution- and compound-scaled models' maps sit on the object more often than the
# others', as in the paper's Figure 7, which compares converged ImageNet models.

# %% [markdown]
# ## Exercises
#
# 1. **The floor for CIFAR-100.** Compute `floor_100`, the smallest possible label-smoothed
#    loss with $\varepsilon = 0.1$ and $K = 100$, by minimising over nothing: evaluate the
#    library's loss at the logits $\log q$. Then find `best_margin`, the margin $M$ that
#    minimises $L(M)$ for $K = 10$, $\varepsilon = 0.1$, in closed form (set
#    $dL/dM = 0$).
# 2. **Where one-cycle peaks.** For `total_steps = 1000` and `pct_start = 0.25`, at which
#    step (`peak_step`) is the rate largest, and what is it (`final_lr`) at the last step,
#    for `base_lr = 0.2` and the default `div_factor = 25`, `final_div_factor = 1e4`?

# %%
# --- solution (replace with your own) ---------------------------------------------------
K100 = 100
q100 = np.full((K100, K100), eps / K100) + (1 - eps) * np.eye(K100)
floor_100 = me.ops.softmax_cross_entropy(np.log(q100), np.arange(K100), eps)[0]
# dL/dM = -(K-1)e^{-M} / (1 + (K-1)e^{-M}) + eps (K-1)/K = 0
#   => (K-1) e^{-M} = c / (1 - c) with c = eps (K-1) / K
c = eps * (K - 1) / K
best_margin = np.log((K - 1) * (1 - c) / c)
peak_step = round(0.25 * 1000) - 1
final_lr = 0.2 / 25 / 1e4

# %%
# --- check ---------------------------------------------------------------------------------
h100 = -((1 - eps + eps / K100) * np.log(1 - eps + eps / K100)
         + (K100 - 1) * eps / K100 * np.log(eps / K100))
print(f"floor for K=100: {floor_100:.6f}, best margin for K=10: {best_margin:.4f}")
assert abs(floor_100 - h100) < 1e-12
grid_M = np.linspace(0, 20, 200_001)
L_grid = np.log1p((K - 1) * np.exp(-grid_M)) + eps * (K - 1) / K * grid_M
assert abs(grid_M[L_grid.argmin()] - best_margin) < 1e-3
# at the best margin p equals q: the true logit's softmax is 1 - eps + eps/K
assert abs(np.exp(best_margin) / (np.exp(best_margin) + K - 1) - (1 - eps + eps / K)) < 1e-12
sched = [one_cycle(s, 1000, 0.2, pct_start=0.25) for s in range(1000)]
assert int(np.argmax(sched)) == peak_step and abs(sched[-1] - final_lr) < 1e-15
print("all exercises pass")
