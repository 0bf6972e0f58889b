"""Progressive learning (EfficientNetV2, Tan & Le 2021, §4 and Algorithm 1): train at a low
resolution with weak regularisation first, and reach the full resolution and the full
regularisation at the end.

    >>> [progressive_stage(e, 6, start_resolution=16, final_resolution=32, stages=3)
    ...  for e in range(6)]          # epochs 1-2 at 16 px, 3-4 at 24 px, 5-6 at 32 px

The run is cut into ``stages`` equal groups of epochs (fewer when there are fewer epochs than
stages). Stage ``i`` of ``M`` trains at ``S_0 + (S_e - S_0) * i / (M - 1)`` pixels (rounded)
with every dropout and stochastic-depth rate scaled by ``R_0 + (1 - R_0) * i / (M - 1)``: the
paper's linear interpolation of image size and regularisation (it grows dropout, RandAugment
and mixup; this network's regularisers are dropout and stochastic depth). The last stage is
the network as configured, at ``final_resolution``, which is also where it is evaluated.

A stage is a pure function of the epoch, so a resumed run lands on the same stage.
"""
from __future__ import annotations

from dataclasses import dataclass

from .model import EfficientNet


@dataclass(frozen=True)
class Stage:
    """What one epoch trains with: ``resolution`` (pixels, square) and ``regularization``,
    the factor on the configured dropout and stochastic-depth rates (1: as configured)."""

    resolution: int
    regularization: float


def progressive_stage(epoch: int, epochs: int, *, start_resolution: int | None,
                      final_resolution: int, stages: int = 3,
                      start_regularization: float = 0.0) -> Stage:
    """The :class:`Stage` of 0-based ``epoch`` in a run of ``epochs`` (module docstring).

    ``start_resolution`` None: no progressive learning, every epoch is
    ``Stage(final_resolution, 1.0)``.
    """
    if start_resolution is None:
        return Stage(final_resolution, 1.0)
    if not 0 <= epoch < epochs:
        raise ValueError(f"epoch {epoch} is outside a run of {epochs} epochs")
    used = min(stages, epochs)  # each stage needs an epoch; the last one is always reached
    if used == 1:
        return Stage(final_resolution, 1.0)
    t = (epoch * used // epochs) / (used - 1)
    return Stage(round(start_resolution + (final_resolution - start_resolution) * t),
                 start_regularization + (1.0 - start_regularization) * t)


def apply_regularization(model: EfficientNet, scale: float) -> None:
    """Set the model's dropout and every block's stochastic-depth rate to ``scale`` times the
    rates in ``model.config`` (its classifier dropout and each block's
    ``drop_connect_rate``)."""
    model.dropout.p = model.config.dropout * scale
    for block, spec in zip(model.blocks, model.config.blocks):
        if block.drop_connect is not None:
            block.drop_connect.p = spec.drop_connect_rate * scale
