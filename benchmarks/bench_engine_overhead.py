"""Engine training throughput against a bare PyTorch loop: same model, batch, data and loss,
measured in one process, alternating the two so that machine load affects both alike.

    python benchmarks/bench_engine_overhead.py [--steps 40] [--repeats 3] [--size 128]

Prints images/s of each and the ratio engine / bare (goal >= 0.95, i.e. overhead <= 5%).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import torch
from rich.console import Console

from jmedbench.config import build_config
from jmedbench.data import stack_slices
from jmedbench.engine.build import build_dataset, build_model
from jmedbench.labels import NUM_CLASSES
from jmedbench.engine.preprocess import hu_to_input
from jmedbench.engine.progress import RichReporter
from jmedbench.engine.train import class_weights, dice_ce_loss, train_supervised
from jmedbench.registry import get_registry
from jmedbench.strategy import Strategy


def bare_loop(model, inputs, labels, steps, batch, lr, weights, seed) -> float:
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(inputs.shape[0], (batch,), generator=generator)
        loss = dice_ce_loss(model(inputs[idx]), labels[idx], weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--model", default="unet")
    args = parser.parse_args()
    registry = get_registry()
    cfg = build_config("default", overrides={"data.image_size": args.size,
                                             "train.steps": args.steps, "model": args.model})
    images, labels_np = stack_slices(build_dataset(registry, cfg).split("train"))
    inputs, labels = torch.from_numpy(hu_to_input(images)), torch.from_numpy(labels_np)
    weights = torch.from_numpy(class_weights(labels_np, NUM_CLASSES))
    torch.manual_seed(0)
    model, _ = build_model(registry, cfg)
    reporter = RichReporter(Console(file=io.StringIO(), force_terminal=True))
    bare, engine = [], []
    bare_loop(model, inputs, labels, 3, cfg.train.batch_size, cfg.train.lr, weights, 0)  # warm-up
    for r in range(args.repeats):
        bare.append(bare_loop(model, inputs, labels, args.steps, cfg.train.batch_size,
                              cfg.train.lr, weights, r))
        result = train_supervised(model, Strategy(), inputs, labels, cfg.train, r, NUM_CLASSES,
                                  reporter)
        engine.append(result.images_per_second)
    reporter.close()
    b, e = statistics.median(bare), statistics.median(engine)
    print(f"model {args.model}, {args.size}x{args.size}, batch {cfg.train.batch_size}, "
          f"{args.steps} steps x {args.repeats} repeats, torch threads {torch.get_num_threads()}")
    print(f"bare PyTorch loop : {b:8.1f} images/s  (runs: {', '.join(f'{x:.1f}' for x in bare)})")
    print(f"jmedbench engine  : {e:8.1f} images/s  (runs: {', '.join(f'{x:.1f}' for x in engine)})")
    print(f"ratio engine/bare : {e / b:.3f}  (goal >= 0.95)")


if __name__ == "__main__":
    main()
