"""Networks at equal FLOPs: scale a base by one strategy to a FLOPs target, and the grid of
(α, β, γ) with α·β²·γ² ≈ 2 (Tan & Le 2019, Eq. 3 and §3.3 Step 1)."""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

from ..errors import BadOptionError, TooLargeError
from ..scaling import (PAPER_COEFFICIENTS, PRESETS, EfficientNetConfig, compound_coefficients,
                       count_flops, make_config)
from ..validate import check_positive, check_real

STRATEGIES = ("depth", "width", "resolution", "compound")
FLOPS_TOLERANCE = 0.05  # the solved FLOPs must be within ±5 % of the target
# The default grid of grid_candidates: its step, and the allowed |α·β²·γ² − 2|.
GRID_STEP = 0.05
GRID_TOLERANCE = 0.1
# The most (α, β, γ) points grid_candidates may search: with the default tolerance a step
# down to about 0.0135, some 4,000 candidates (far more than a study trains), listed in well
# under a second. A finer step would take minutes to hours before anything trains.
MAX_GRID_POINTS = 100_000


def _preset_of(config: EfficientNetConfig) -> str:
    """The preset whose stem and stage strides ``config`` has (needed to rebuild it scaled)."""
    strides = [s[0].stride for s in config.stages]
    for preset in PRESETS:
        ref = make_config("b0", 10, preset=preset)
        if ref.stem_stride == config.stem_stride and [s[0].stride for s in ref.stages] == strides:
            return preset
    raise ValueError(f"{config.name}: its strides match no preset ({', '.join(PRESETS)})")


def scale_config(base: EfficientNetConfig, depth: float = 1.0, width: float = 1.0,
                 resolution: float = 1.0, name: str | None = None) -> EfficientNetConfig:
    """``base`` with its depth and width multiplied by ``depth`` / ``width`` and its input size
    by ``resolution`` (rounded to whole pixels); dropout, BatchNorm and padding are kept.

    Channels round to multiples of 8 and repeats round up (:func:`~minieffnet.scaling.
    round_filters`, :func:`~minieffnet.scaling.round_repeats`), so the FLOPs follow the
    multipliers only in steps.
    """
    return dataclasses.replace(make_config(
        "b0", base.num_classes, preset=_preset_of(base), width=base.width * width,
        depth=base.depth * depth, resolution=max(1, round(base.resolution * resolution)),
        dropout=base.dropout, drop_connect=base.drop_connect, padding=base.padding,
        bn_eps=base.bn_eps, bn_momentum=base.bn_momentum), name=name or base.name)


def _strategy_multipliers(strategy: str, t: float, alpha: float, beta: float,
                          gamma: float) -> tuple[float, float, float]:
    """(depth, width, resolution) multipliers at the strategy's continuous parameter ``t``.

    Single dimensions grow as ``e^t``; compound as ``(α^t, β^t, γ^t)`` so ``t`` is φ (Eq. 3).
    """
    if strategy == "depth":
        return math.exp(t), 1.0, 1.0
    if strategy == "width":
        return 1.0, math.exp(t), 1.0
    if strategy == "resolution":
        return 1.0, 1.0, math.exp(t)
    return alpha ** t, beta ** t, gamma ** t


def solve_strategy(base_config: EfficientNetConfig, strategy: str, target_multiplier: float,
                   alpha: float = PAPER_COEFFICIENTS[0], beta: float = PAPER_COEFFICIENTS[1],
                   gamma: float = PAPER_COEFFICIENTS[2], *,
                   tolerance: float = FLOPS_TOLERANCE) -> EfficientNetConfig:
    """Scale ``base_config`` by one ``strategy`` until its FLOPs are ``target_multiplier`` times
    the base's (within ``tolerance``, default ±5 %), as the paper's Figure 8 / Table 3 compare
    scaling methods at equal FLOPs.

    ``strategy`` is ``"depth"``, ``"width"``, ``"resolution"`` (that multiplier alone) or
    ``"compound"`` (Eq. 3: depth α^φ, width β^φ, resolution γ^φ, solving for φ; the paper's
    ``α·β²·γ² ≈ 2`` makes φ ≈ log2 of the target before rounding).

    FLOPs (:func:`~minieffnet.scaling.count_flops`) do not depend smoothly on the multipliers:
    channels round to multiples of 8, repeats round up and the resolution to whole pixels. They
    never decrease as the multiplier grows, so a bisection on the continuous multiplier finds
    the two rounded networks on either side of the target; the closer one (in log ratio) is
    returned. Its ``name`` records the strategy, the multiplier and the achieved ratio
    (``count_flops(result) / count_flops(base_config)``). Raises ValueError if neither is
    within the tolerance (the rounding step there is too coarse: use a wider, deeper or larger
    base), or for an unknown strategy, a non-positive target or (compound) an α, β or γ that
    is not a positive number.
    """
    if strategy not in STRATEGIES:
        raise BadOptionError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    check_positive("target_multiplier", target_multiplier)
    if strategy == "compound":
        d, w, r = compound_coefficients(1.0, alpha, beta, gamma)  # checks each is positive
        if d * w ** 2 * r ** 2 <= 1:
            raise BadOptionError(f"compound scaling needs α·β²·γ² > 1 to grow FLOPs, got "
                                 f"{d * w ** 2 * r ** 2:.3g}")
    base_flops = count_flops(base_config)

    def build(t: float) -> EfficientNetConfig:
        d, w, r = _strategy_multipliers(strategy, t, alpha, beta, gamma)
        return scale_config(base_config, d, w, r)

    def ratio(t: float) -> float:
        return count_flops(build(t)) / base_flops

    rule = f" (alpha {alpha:g}, beta {beta:g}, gamma {gamma:g})" if strategy == "compound" else ""
    unreachable = (f"{strategy} scaling{rule} cannot reach the target {target_multiplier:g}x "
                   "the FLOPs")
    # Bracket the target: ratio(lo) <= target <= ratio(hi), widening geometrically.
    lo, hi, direction = 0.0, 0.0, 1.0 if target_multiplier >= 1 else -1.0
    step = 0.5
    for _ in range(5):  # |t| up to 8: multipliers up to e^8 ≈ 3000
        edge = direction * step
        try:
            reached = ratio(edge) >= target_multiplier
        except TooLargeError as e:  # the network outgrows this machine before the target
            raise TooLargeError(f"{unreachable}: {e}") from None
        if reached == (direction > 0):
            lo, hi = (lo, edge) if direction > 0 else (edge, hi)
            break
        lo, hi = (edge, hi) if direction > 0 else (lo, edge)
        step *= 2
    else:
        raise BadOptionError(unreachable)
    for _ in range(60):  # shrink the bracket to the rounding step that crosses the target
        mid = (lo + hi) / 2
        if ratio(mid) >= target_multiplier:
            hi = mid
        else:
            lo = mid
    t = min((lo, hi), key=lambda x: abs(math.log(ratio(x) / target_multiplier)))
    achieved = ratio(t)
    if abs(achieved / target_multiplier - 1) > tolerance:
        raise BadOptionError(
            f"{unreachable} within ±{100 * tolerance:g} %: the nearest rounded networks give "
            f"{ratio(lo):.3f}x and {ratio(hi):.3f}x (channels round to 8, repeats up, "
            "resolution to pixels); use a larger base network")
    label = f"phi={t:.3f}" if strategy == "compound" else f"x{math.exp(t):.3f}"
    return dataclasses.replace(build(t), name=f"{strategy} {label} ({achieved:.3f}x FLOPs)")


# --- the grid of §3.3 Step 1 -------------------------------------------------------------------
def candidate_network(base: EfficientNetConfig, abg: tuple[float, float, float],
                      phi: float = 1.0, equal_cost: float | None = None) -> EfficientNetConfig:
    """The network that (α, β, γ) = ``abg`` scales ``base`` to at compound coefficient
    ``phi`` (Eq. 3: depth α^φ, width β^φ, resolution γ^φ).

    As written, rounding makes the candidates of one grid cost anything from 1.4x to 2.5x
    the base at φ = 1 although α·β²·γ² ≈ 2 for all of them, so a ranking partly rewards the
    ones that round up. With ``equal_cost`` (a tolerance such as 0.02), φ is re-solved so
    that every candidate costs 2^phi times the base's FLOPs within ±equal_cost
    (:func:`solve_strategy` with the candidate as its compound coefficients): the candidates
    then differ only in how they share the cost between the dimensions. Raises ValueError
    where the rounding steps leave no network within the tolerance.
    """
    a, b, g = abg
    if equal_cost is None:
        return scale_config(base, a ** phi, b ** phi, g ** phi)
    return solve_strategy(base, "compound", 2.0 ** phi, a, b, g, tolerance=equal_cost)


def same_networks(base: EfficientNetConfig, candidates: Sequence[tuple[float, float, float]],
                  network: Callable[[tuple[float, float, float]], EfficientNetConfig] | None = None,
                  ) -> dict[tuple[float, float, float], list[tuple[float, float, float]]]:
    """Group the (α, β, γ) ``candidates`` by the network they scale ``base`` to (``network``,
    default :func:`scale_config` at φ = 1): ``{kept: [the others]}``, in the order of
    ``candidates``.

    Repeats round up and channels to multiples of 8 (:func:`scale_config`), so on a small
    base several triples give the same network: at depth 0.25, α = 1.6 and 1.7 round to
    the same repeats in every stage. Training both ranks one network twice. Each group is
    kept by its first triple, or by the paper's (1.2, 1.1, 1.15) where it is in the group,
    so that a ranking can say where the paper's choice stands.
    """
    build = network or (lambda abg: scale_config(base, *abg))
    groups: dict[EfficientNetConfig, list[tuple[float, float, float]]] = {}
    for abg in candidates:
        config = dataclasses.replace(build(tuple(abg)), name="", width=0.0, depth=0.0)
        groups.setdefault(config, []).append(tuple(abg))
    out = {}
    for group in groups.values():
        kept = PAPER_COEFFICIENTS if PAPER_COEFFICIENTS in group else group[0]
        out[kept] = [abg for abg in group if abg != kept]
    return out


def grid_candidates(step: float = GRID_STEP, tol: float = GRID_TOLERANCE
                    ) -> list[tuple[float, float, float]]:
    """Every (α, β, γ) on a grid of ``step`` from 1 with ``|α·β²·γ² − 2| <= tol``.

    The paper's constraint (Eq. 3): α, β, γ ≥ 1 and α·β²·γ² ≈ 2, so that φ = 1 doubles the
    FLOPs; its search found (1.2, 1.1, 1.15), product 1.92 (on the default grid with tol 0.1).
    Values are rounded to 10 decimals so the grid is exact; sorted by α, then β, then γ.
    Raises BadOptionError naming ``step`` when the grid to search, α in [1, 2 + tol] and β, γ
    in [1, √(2 + tol)], has more than :data:`MAX_GRID_POINTS` points.
    """
    check_positive("step", step)
    if not 0 <= check_real("tol", tol) < 1:
        raise BadOptionError(f"tol must be in [0, 1), got {tol}")
    top = 2 + tol
    # Counted in floats before any list is made: a tiny step gives an astronomic (or
    # infinite) count instead of a search that never ends.
    side = (math.sqrt(top) - 1) / step + 1  # of the β and γ axes
    points = ((top - 1) / step + 1) * side * side
    if points > MAX_GRID_POINTS:
        raise BadOptionError(f"step {step!r} makes a grid of {points:.3g} (alpha, beta, gamma) "
                             f"points to search, more than {MAX_GRID_POINTS:,}: use a larger "
                             f"step (default {GRID_STEP})")

    def axis(limit: float) -> list[float]:
        return [round(1 + i * step, 10) for i in range(int((limit - 1) / step + 1e-9) + 1)]

    return [(a, b, g) for a in axis(top) for b in axis(math.sqrt(top / a))
            for g in axis(math.sqrt(top / (a * b * b)))
            if abs(a * b * b * g * g - 2) <= tol + 1e-9]  # 1e-9: 1.9 - 2 is -0.10000000000000009
