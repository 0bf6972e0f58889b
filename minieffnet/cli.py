"""The ``minieffnet`` command line."""
from __future__ import annotations

import argparse
import sys


def _add_model_args(p: argparse.ArgumentParser) -> None:
    """Arguments that choose a network: a variant, or custom coefficients, or φ."""
    p.add_argument("variant", nargs="?", default="b0", help="b0..b7 (default b0)")
    p.add_argument("--preset", choices=("imagenet", "cifar"), default="imagenet")
    p.add_argument("--num-classes", type=int, default=None,
                   help="default 1000 (imagenet preset) or 10 (cifar preset)")
    p.add_argument("--width", type=float, help="custom width multiplier")
    p.add_argument("--depth", type=float, help="custom depth multiplier")
    p.add_argument("--resolution", type=int, help="input resolution (pixels)")
    p.add_argument("--phi", type=float, help="compound coefficient: d=1.2^φ, w=1.1^φ, r=1.15^φ")


def _config_from_args(args):
    from .scaling import make_config
    num_classes = args.num_classes or (10 if args.preset == "cifar" else 1000)
    overrides = {k: getattr(args, k) for k in ("width", "depth", "resolution", "phi")
                 if getattr(args, k) is not None}
    return make_config(args.variant, num_classes, preset=args.preset, **overrides)


def cmd_info(args) -> int:
    """Print the stage table (like the paper's Table 1), parameters and FLOPs."""
    from .scaling import count_flops, count_parameters, stage_table
    cfg = _config_from_args(args)
    print(f"EfficientNet {cfg.name} ({args.preset} preset): width {cfg.width:g}, depth "
          f"{cfg.depth:g}, resolution {cfg.resolution}, dropout {cfg.dropout:g}, "
          f"{cfg.num_classes} classes\n")
    print(f"{'stage':>5}  {'operator':<24}{'resolution':>12}{'channels':>10}{'layers':>8}"
          f"{'params':>13}{'FLOPs (MAdds)':>16}")
    for r in stage_table(cfg):
        res = f"{r.resolution[0]}x{r.resolution[1]}"
        print(f"{r.stage:>5}  {r.operator:<24}{res:>12}{r.channels:>10}{r.layers:>8}"
              f"{r.params:>13,}{r.flops:>16,}")
    params, flops = count_parameters(cfg), count_flops(cfg)
    print(f"\nparameters: {params:,}   FLOPs: {flops / 1e9:.3f} B multiply-adds "
          f"at {cfg.resolution}x{cfg.resolution}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minieffnet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check-ops", help="gradient-check every op in float64 and print a table")
    info = sub.add_parser("info", help="stage table, parameters and FLOPs of a network")
    _add_model_args(info)
    args = parser.parse_args(argv)
    try:
        if args.command == "check-ops":
            from .opcheck import print_op_table
            return print_op_table()
        if args.command == "info":
            return cmd_info(args)
    except ValueError as e:  # bad arguments: one clear line, no traceback
        print(f"minieffnet {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
