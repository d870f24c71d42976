"""Slices per second of every registered corruption on 128 x 128 phantom slices, slowest first,
and the cached projector against scikit-image's radon/iradon measured in the same run.

    python benchmarks/bench_corruptions.py [--size 128] [--repeats 10] [--threads 1]

Each corruption is timed over ``repeats`` slices at each severity 1..5 after one warm-up call
(which builds the projector cache for the CT family). The numbers depend on the machine; the
ratios printed at the end (projector vs scikit-image, slowest vs fastest corruption) are what
carries over.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def phantom_slices(size: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from jmedbench.config import build_config
    from jmedbench.engine.build import build_dataset
    from jmedbench.registry import get_registry

    cfg = build_config("quick", overrides={"data.image_size": size})
    data = build_dataset(get_registry(), cfg)
    slices = [(s.image[i], s.label[i]) for s in data.split("test") for i in range(s.n_slices)]
    return [slices[i % len(slices)] for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pattern", default=None, help="only corruptions matching this")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch
    torch.set_num_threads(args.threads)

    from jmedbench.registry import get_registry

    registry = get_registry()
    slices = phantom_slices(args.size, args.repeats)
    rows = []
    for spec in registry.specs("corruptions", args.pattern):
        image, label = slices[0]
        spec.apply(image, label, 1, np.random.default_rng(0))  # warm-up (projector cache)
        start = time.perf_counter()
        for severity in range(1, spec.severities + 1):
            for k, (image, label) in enumerate(slices):
                spec.apply(image, label, severity, np.random.default_rng([k, severity]))
        seconds = time.perf_counter() - start
        rows.append((len(slices) * spec.severities / seconds, spec.name, spec.family))
    rows.sort()
    print(f"slices/s at {args.size}x{args.size}, {args.threads} thread(s), "
          f"{args.repeats} slices x 5 severities each (slowest first)")
    for rate, name, family in rows:
        print(f"  {name:20s} {family:8s} {rate:9.1f}")
    if len(rows) > 1:
        print(f"slowest / fastest: {rows[0][1]} is {rows[-1][0] / rows[0][0]:.0f}x slower than "
              f"{rows[-1][1]}")
    compare_projector(slices[0][0])


def compare_projector(image: np.ndarray, repeats: int = 3) -> None:
    """One forward projection plus one filtered back-projection: the cached sparse projector
    against scikit-image (what the CT corruptions would cost with it)."""
    from skimage.transform import iradon, radon

    from jmedbench_corruptions.projection import hu_to_mu, projector

    mu = hu_to_mu(image)
    proj = projector(*image.shape)
    theta = np.arange(proj.n_angles) * 180.0 / proj.n_angles
    start = time.perf_counter()
    for _ in range(repeats):
        proj.fbp(proj.forward(mu))
    ours = (time.perf_counter() - start) / repeats
    start = time.perf_counter()
    for _ in range(repeats):
        iradon(radon(mu, theta, circle=False), theta, circle=False,
               output_size=image.shape[0])
    theirs = (time.perf_counter() - start) / repeats
    print(f"radon + filtered back-projection, {proj.n_angles} angles: cached projector "
          f"{ours * 1000:.1f} ms, scikit-image {theirs * 1000:.1f} ms ({theirs / ours:.1f}x)")


if __name__ == "__main__":
    main()
