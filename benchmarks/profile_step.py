"""Where does one EfficientNet-B0 step spend its time? A per-op breakdown.

    python benchmarks/profile_step.py                      # training step, 64×64, batch 64
    python benchmarks/profile_step.py --mode infer
    python benchmarks/profile_step.py --preset cifar --resolution 32
    python benchmarks/profile_step.py --preset cifar --width 0.25 --depth 0.25 \
        --resolution 16 --batch 128                        # the scaling study's base network

Every ``minieffnet.ops`` forward/backward function is wrapped with a timer (the layers call
them through the ``ops`` namespace, so nothing else changes), two warm-up steps compile the
kernels, and the mean of the timed steps is split by op, with the number of calls per step
(which tells per-call overhead from work on small networks). "outside ops" is the Python glue:
module calls, residual adds, the loss gradient.
"""
from __future__ import annotations

import argparse
import collections
import time

import numpy as np

import minieffnet as me
from minieffnet import ops


def instrument() -> tuple[dict[str, float], dict[str, int]]:
    """Wrap every ``ops.*_forward`` / ``ops.*_backward``; returns the seconds they accumulate
    and their call counts, both by op name."""
    spent: dict[str, float] = collections.defaultdict(float)
    calls: dict[str, int] = collections.defaultdict(int)
    for name in dir(ops):
        if name.endswith(("_forward", "_backward")):
            fn = getattr(ops, name)

            def timed(*args, _fn=fn, _name=name, **kwargs):
                start = time.perf_counter()
                try:
                    return _fn(*args, **kwargs)
                finally:
                    spent[_name] += time.perf_counter() - start
                    calls[_name] += 1

            setattr(ops, name, timed)
    return spent, calls


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("train", "infer"), default="train")
    p.add_argument("--preset", choices=("imagenet", "cifar"), default="imagenet")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--depth", type=float, default=1.0)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()

    spent, calls = instrument()
    model = me.EfficientNet(me.make_config("b0", 10, preset=args.preset, width=args.width,
                                           depth=args.depth, resolution=args.resolution))
    x = np.random.default_rng(0).standard_normal(
        (args.batch, 3, args.resolution, args.resolution)).astype(np.float32)
    dlogits = np.full((args.batch, 10), 1 / args.batch, np.float32)

    def step() -> None:
        if args.mode == "train":
            model.train()
            model.forward(x)
            model.backward(dlogits)
        else:
            model.eval()
            model.forward(x)

    for _ in range(2):
        step()
    spent.clear()
    calls.clear()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    total = (time.perf_counter() - start) / args.steps
    print(f"B0 {args.mode}, {args.preset} preset, width {args.width:g}, depth {args.depth:g}, "
          f"{args.resolution}×{args.resolution}, batch "
          f"{args.batch}: {1e3 * total:.0f} ms per step ({args.batch / total:.1f} img/s), "
          f"mean of {args.steps}\n")
    print("| op | ms per step | share | calls per step |\n|---|---|---|---|")
    in_ops = 0.0
    for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        per_step = seconds / args.steps
        in_ops += per_step
        if per_step >= 0.0005:
            print(f"| {name} | {1e3 * per_step:.1f} | {100 * per_step / total:.1f} % | "
                  f"{calls[name] // args.steps} |")
    print(f"| (outside ops) | {1e3 * (total - in_ops):.1f} | "
          f"{100 * (total - in_ops) / total:.1f} % | – |")


if __name__ == "__main__":
    main()
