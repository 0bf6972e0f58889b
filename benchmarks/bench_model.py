"""Full-model speed and memory: minieffnet vs torchvision's EfficientNet on PyTorch CPU.

    python benchmarks/bench_model.py                       # B0, 64x64, batch 64, imagenet preset
    python benchmarks/bench_model.py --preset cifar --resolution 32

For each implementation and each mode (``train``: forward + backward + SGD update;
``infer``: eval-mode forward) a fresh subprocess builds the model, warms up (Numba compiles
or loads its cache; PyTorch allocates), then times ``--steps`` steps. Running each case in its
own process makes ``ru_maxrss`` that case's peak resident memory. Both sides use the same
threads (2 on the project's machines) and float32.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np


def _torch_model(args):
    import torch
    import torchvision
    torch.set_num_threads(args.threads)
    model = torchvision.models.efficientnet_b0(num_classes=args.classes)
    if args.preset == "cifar":  # the same stride changes as minieffnet's cifar preset
        model.features[0][0].stride = (1, 1)
        model.features[2][0].block[1][0].stride = (1, 1)
    return model


def run_case(args) -> dict:
    """Time one (implementation, mode) pair in this process; returns images/s and peak RSS."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 3, args.resolution, args.resolution)).astype(np.float32)
    y = rng.integers(0, args.classes, args.batch)
    if args.impl == "torch":
        import torch
        model = _torch_model(args)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def step():
            if args.mode == "train":
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(xt), yt).backward()
                opt.step()
            else:
                with torch.no_grad():
                    model(xt)
        model.train(args.mode == "train")
    else:
        import minieffnet as me
        from minieffnet.optim import SGD
        model = me.efficientnet("b0", args.classes, preset=args.preset,
                                resolution=args.resolution)
        opt = SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            logits = model(x)
            if args.mode == "train":
                _, dlogits = me.ops.softmax_cross_entropy(logits, y)
                model.backward(dlogits)
                opt.step()
        model.train(args.mode == "train")
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    median = float(np.median(times))
    return {"impl": args.impl, "mode": args.mode, "seconds": median,
            "images_per_s": args.batch / median,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def machine() -> str:
    import numba
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.processor())
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, NumPy "
            f"{np.__version__} (BLAS {blas.get('name', '?')} {blas.get('version', '')}), "
            f"Numba {numba.__version__}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=("imagenet", "cifar"), default="imagenet")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--impl", choices=("minieffnet", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=("train", "infer"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.impl:  # child process: one case, JSON on stdout
        print(json.dumps(run_case(args)))
        return
    try:
        import torch  # noqa: F401
        impls = ("minieffnet", "torch")
    except ImportError:
        impls = ("minieffnet",)
    env = dict(os.environ, NUMBA_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    print(f"# EfficientNet-B0 ({args.preset} preset), {args.resolution}x{args.resolution}, "
          f"batch {args.batch}, float32, {args.threads} threads; median of {args.steps} steps")
    print(f"# {machine()}; {time.strftime('%Y-%m-%d')}\n")
    print(f"| mode | implementation | images/s | ms/step | peak RSS (MB) | ratio vs PyTorch |")
    print(f"|---|---|---|---|---|---|")
    for mode in ("train", "infer"):
        results = {}
        for impl in impls:
            cmd = [sys.executable, __file__, "--impl", impl, "--mode", mode] + [
                f"--{k}={v}" for k, v in vars(args).items() if k not in ("impl", "mode")]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode:
                sys.exit(f"{impl} {mode} failed:\n{out.stderr}")
            results[impl] = json.loads(out.stdout.strip().splitlines()[-1])
        for impl, r in results.items():
            ratio = (r["images_per_s"] / results["torch"]["images_per_s"]
                     if "torch" in results else float("nan"))
            print(f"| {mode} | {impl} | {r['images_per_s']:.1f} | {1e3 * r['seconds']:.0f} | "
                  f"{r['peak_rss_mb']:.0f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
