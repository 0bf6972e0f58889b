"""Class activation maps (Zhou et al. 2016, "Learning Deep Features for Discriminative
Localization"), as in the EfficientNet paper's Figure 7.

EfficientNet ends with global average pooling and one linear layer, which is exactly the
structure CAM needs. With F: (K, h, w) the last feature map (the head's output), w: (C, K)
the classifier weight and b: (C,) its bias::

    logit_c = sum_k w[c, k] * mean_xy F_k(x, y) + b_c = mean_xy M_c(x, y) + b_c
    M_c(x, y) = sum_k w[c, k] * F_k(x, y)

so the map M_c says how much each location adds to class c's score: its spatial mean plus the
bias *is* the logit. The bias does not vary over space, so it is left out of the map.

    >>> cams, logits = class_activation_maps(model, x)      # x: (N, 3, R, R)
    >>> heat = upsample_cam(cams, R)                        # (N, R, R), aligned with x
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .data import resize_bilinear
from .model import EfficientNet
from .viz import figure, save


def class_activation_maps(model: EfficientNet, x: np.ndarray,
                          classes: int | Sequence[int] | np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Class activation maps and logits of ``model`` for a batch, in eval mode.

    x: (N, 3, H, W) normalised input in the model's dtype. classes: the class whose map to
    return for each image: None (each image's predicted class, the argmax of its logits), one
    int for every image, or N ints. Returns ``(cams, logits)``: cams (N, h, w) with
    ``cams[n] = sum_k W[classes[n], k] * F[n, k]`` where F: (N, K, h, w) is the head's output
    (h = H / 32 for the imagenet preset) and W: (num_classes, K) the classifier weight;
    logits (N, num_classes), equal to ``model(x)`` in eval mode. Both in the model's dtype.
    The model is left in the mode it was in. Raises ValueError for a bad x or class.
    """
    if not (isinstance(x, np.ndarray) and x.ndim == 4 and x.shape[1] == 3):
        raise ValueError(f"class_activation_maps: x must be an (N, 3, H, W) array, got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    if x.dtype != model.dtype:
        # The layers would compute in x's dtype against weights in another: refuse, as
        # model.forward does, rather than return maps of a silently mixed precision.
        raise ValueError(f"class_activation_maps: x has dtype {x.dtype} but the model is "
                         f"{model.dtype}")
    was_training = model.training
    model.eval()  # running BatchNorm statistics, no dropout, no stochastic depth
    try:
        # model.forward's two halves, keeping the feature map between them.
        features = model.features(x)
        logits = model.classify(features)
    finally:
        model.train(was_training)
    n, num_classes = logits.shape
    if classes is None:
        chosen = logits.argmax(axis=1)
    else:
        chosen = np.broadcast_to(np.asarray(classes), (n,)) if np.ndim(classes) == 0 \
            else np.asarray(classes)
        if (chosen.shape != (n,) or not np.issubdtype(chosen.dtype, np.integer)
                or (n and (chosen.min() < 0 or chosen.max() >= num_classes))):
            raise ValueError(f"class_activation_maps: classes must be None, an int or {n} "
                             f"ints in 0..{num_classes - 1}, got {classes!r}")
    weight = model.classifier.weight.data[chosen]  # (N, K): each image's class row
    cams = np.einsum("nk,nkhw->nhw", weight, features)
    return cams, logits


def upsample_cam(cam: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of class activation maps to the input resolution.

    cam: (h, w) or (N, h, w). size: R for R x R, or (H, W). Returns (H, W) or (N, H, W), float
    (the dtype of cam if float32/float64, else float64). Uses the same bilinear resize as the
    input pipeline (``align_corners=False``: pixel centres line up), so the upsampled map
    lies over the image exactly where the network saw it.
    """
    cam = np.asarray(cam)
    if cam.ndim not in (2, 3):
        raise ValueError(f"upsample_cam: cam must be (h, w) or (N, h, w), got {cam.shape}")
    if cam.dtype not in (np.float32, np.float64):
        cam = cam.astype(np.float64)
    batch = cam if cam.ndim == 3 else cam[None]
    out = resize_bilinear(np.ascontiguousarray(batch[:, None]), size)[:, 0]
    return out if cam.ndim == 3 else out[0]


def plot_cams(images_hwc_uint8: Sequence[np.ndarray], rows_of_cams_per_model:
              Sequence[Sequence[np.ndarray]], titles: Sequence[Sequence[str]],
              out_png: str | os.PathLike, *, image_titles: Sequence[str] | None = None,
              alpha: float = 0.5) -> Path:
    """A grid of class activation maps: one row per image; first column the image, then one
    column per model with its map over the image (jet colour map, ``alpha`` opaque).

    images_hwc_uint8: N images, each (H, W, 3) uint8 (sizes may differ). rows_of_cams_per_model:
    N rows of M maps, any (h, w) each (models may differ in resolution): each map is upsampled
    to its image's H x W, the common display size of the row, and scaled to [0, 1] on its
    own, since only where a map is high matters, not its scale. titles: N rows of M strings
    (e.g. model, predicted class and probability). image_titles: N strings over the first
    column. Writes ``out_png`` (atomically, :func:`~minieffnet.viz.save`) and returns its path.
    """
    n = len(images_hwc_uint8)
    if n == 0:
        raise ValueError("plot_cams: no image to plot")
    m = len(rows_of_cams_per_model[0]) if len(rows_of_cams_per_model) else 0
    if (len(rows_of_cams_per_model) != n or len(titles) != n or m == 0
            or any(len(r) != m for r in rows_of_cams_per_model)
            or any(len(t) != m for t in titles)
            or (image_titles is not None and len(image_titles) != n)):
        raise ValueError(f"plot_cams: need {n} rows of the same number (>= 1) of maps and "
                         f"titles, and {n} image titles if any")
    fig = figure((2.2 * (m + 1), 2.3 * n))
    axes = fig.subplots(n, m + 1, squeeze=False)
    for i, image in enumerate(images_hwc_uint8):
        axes[i, 0].imshow(image)
        if image_titles is not None:
            axes[i, 0].set_title(image_titles[i], fontsize=8)
        for j, cam in enumerate(rows_of_cams_per_model[i]):
            heat = upsample_cam(cam, image.shape[:2])
            span = heat.max() - heat.min()
            heat = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
            ax = axes[i, j + 1]
            ax.imshow(image)
            ax.imshow(heat, cmap="jet", alpha=alpha, vmin=0, vmax=1)
            ax.set_title(titles[i][j], fontsize=8)
    for ax in axes.flat:
        ax.set_axis_off()
    return save(fig, out_png)
