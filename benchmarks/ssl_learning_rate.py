"""Does MoCo pre-training learn within our budgets? Mean InfoNCE loss of the first and last five
iterations of ``ssl`` pre-training on the quick profile's phantom, for several learning rates
(the paper's 5e-6 included) and seeds. A falling loss means the encoder is learning something.

    python benchmarks/ssl_learning_rate.py --lrs 5e-6,1e-4,1e-3 --seeds 0,1,2 --iterations 30
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from jmedbench.config import build_config
from jmedbench.data import stack_slices
from jmedbench.engine.build import build_dataset, build_model
from jmedbench.registry import get_registry
from jmedbench.strategy import TrainContext


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--model", default="unet")
    parser.add_argument("--lrs", default="5e-6,1e-4,1e-3")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    registry = get_registry()
    cfg = build_config(args.profile, overrides={"model": args.model})
    images, labels = stack_slices(build_dataset(registry, cfg).split("train"))
    ssl_factory = registry.strategy("ssl").factory
    print(f"{args.profile} phantom: {images.shape[0]} images of {images.shape[1:]}, model "
          f"{args.model}, {args.iterations} iterations of batch {args.batch_size}")
    print(f"{'lr':>8} {'seed':>4} {'first5':>7} {'last5':>7} {'drop':>6} {'s/iter':>7}")
    for lr in (float(v) for v in args.lrs.split(",")):
        for seed in (int(v) for v in args.seeds.split(",")):
            torch.manual_seed(seed)
            model, spec = build_model(registry, cfg)
            ctx = TrainContext(images, labels, None, seed, model_spec=spec)
            strategy = ssl_factory(ssl_iterations=args.iterations, ssl_lr=lr,
                                   ssl_batch_size=args.batch_size)
            t0 = time.perf_counter()
            strategy.pretrain(model, ctx)
            seconds = (time.perf_counter() - t0) / args.iterations
            first, last = np.mean(strategy.losses[:5]), np.mean(strategy.losses[-5:])
            print(f"{lr:8.0e} {seed:4d} {first:7.3f} {last:7.3f} {first - last:6.3f} "
                  f"{seconds:7.2f}", flush=True)


if __name__ == "__main__":
    main()
