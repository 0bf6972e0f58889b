"""Using a trained network: load it with what is needed to feed it and read its output,
prepare image files for it, and predict class probabilities.

    >>> trained = load_trained_model("runs/demo")        # a run folder or a checkpoint .npz
    >>> probs = predict(trained, [read_image("cat.png")])  # (1, classes), rows sum to 1
    >>> trained.class_names[probs[0].argmax()]

:func:`load_trained_model` reads both on-disk formats of :mod:`minieffnet.checkpoint`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .checkpoint import (CHECKPOINT_FILE, MODEL_FORMAT, check_class_names, check_statistics,
                         checkpoint_field, load_model, read_checkpoint,
                         split_training_checkpoint, training_model)
from .data import read_image, resize_bilinear, to_float_nchw
from .model import EfficientNet
from .safe_text import printable
from .train_config import TrainConfig

__all__ = ["TrainedModel", "load_trained_model", "predict", "prepare_images", "read_image",
           "softmax"]


@dataclass(frozen=True)
class TrainedModel:
    """A network ready for inference, with what is needed to feed it and read its output.

    model: in eval mode; the EMA weights when the run kept an EMA. class_names: one per
    output, as stored (any string: print them through
    :func:`~minieffnet.safe_text.printable`). mean, std: the training normalisation (0..255
    scale), or None if the file did not record it. train_config: the run's config (None for a
    bare model checkpoint). description: a line saying what was loaded, for messages (the
    strings from the file in it escaped).
    """

    model: EfficientNet
    class_names: tuple[str, ...]
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None
    train_config: TrainConfig | None
    description: str


def load_trained_model(path: str | os.PathLike) -> TrainedModel:
    """Load a run folder (its ``checkpoint.npz``), a training checkpoint, or a model
    checkpoint written by :func:`minieffnet.checkpoint.save_model` (whose ``extra_meta`` may
    give ``class_names``, ``mean`` and ``std``).

    Raises FileNotFoundError, or :class:`~minieffnet.errors.BadFileError` (a ValueError)
    naming the file, and the field, if it is truncated, corrupt, of another format, holds
    NaN or infinity or malformed metadata, or its weights do not fit its stated architecture.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    arrays, meta = read_checkpoint(path)
    if meta.get("format") == MODEL_FORMAT:
        model, extra = load_model(path, return_meta=True)
        k = model.config.num_classes
        with checkpoint_field(path, "extra"):
            names = check_class_names(extra.get("class_names") or [str(i) for i in range(k)],
                                      k, "class_names")
            mean, std = extra.get("mean"), extra.get("std")
            if mean is not None or std is not None:
                mean, std = check_statistics(mean, std, "normalization")
        return TrainedModel(model.eval(), names, mean, std, None,
                            f"{path} ({printable(model.config.name)})")
    parts = split_training_checkpoint(arrays, meta, path)
    model = training_model(meta, parts, path)
    with checkpoint_field(path, "train_config"):
        config = TrainConfig.from_dict(meta["train_config"])
    pos = meta["position"]
    weights = "EMA weights" if config.ema is not None else "weights"
    norm = meta["normalization"]
    return TrainedModel(model.eval(), tuple(meta["class_names"]), tuple(norm["mean"]),
                        tuple(norm["std"]), config,
                        f"{path} ({printable(model.config.name)}, {weights} after "
                        f"{pos['epoch']} of {config.epochs} epochs, step {pos['step']})")


def prepare_images(trained: TrainedModel, images: Sequence[np.ndarray], *,
                   op: str = "prepare_images") -> np.ndarray:
    """The model's input for N uint8 (H, W, 3) RGB images of any size: (N, 3, R, R) in the
    model's dtype, R = ``trained.model.config.resolution``.

    Each image is normalised with the training statistics, then bilinearly resized to R x R
    (no antialiasing: shrink large photos beforehand for best results; the aspect ratio is
    not kept). ``op`` names the caller in error messages. Raises ValueError if the checkpoint
    lacks the statistics or an image is not (H, W, 3) uint8.
    """
    if trained.mean is None or trained.std is None:
        raise ValueError("this checkpoint does not record the training normalisation (mean, "
                         "std); cannot prepare images for it")
    size = trained.model.config.resolution
    out = np.empty((len(images), 3, size, size), trained.model.dtype)
    for i, image in enumerate(images):
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
                and image.shape[2] == 3):
            raise ValueError(f"{op}: image {i} must be (H, W, 3) uint8, got "
                             f"{getattr(image, 'shape', type(image).__name__)} "
                             f"{getattr(image, 'dtype', '')}")
        # One at a time: the images may differ in size until resized.
        x = to_float_nchw(image[None], trained.mean, trained.std)
        out[i] = x[0] if x.shape[2:] == (size, size) else resize_bilinear(x, size)[0]
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities, (N, classes) float64, from logits (N, classes) of any float dtype."""
    z = logits.astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))  # shifted: exp cannot overflow
    return e / e.sum(axis=1, keepdims=True)


def predict(trained: TrainedModel, images: Sequence[np.ndarray]) -> np.ndarray:
    """Class probabilities, (N, classes) float64, for N uint8 (H, W, 3) RGB images of any size,
    prepared by :func:`prepare_images`.
    """
    x = prepare_images(trained, images, op="predict")
    # One image per forward pass: a large network's activations for a whole batch of big
    # images would not fit in memory.
    logits = [trained.model(x[i:i + 1])[0] for i in range(len(x))]
    return softmax(np.stack(logits)) if logits else np.zeros((0, trained.model.config.num_classes))
