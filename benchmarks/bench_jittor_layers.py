"""The three places where the Jittor backend replaces Jittor's own implementation (see
docs/jittor.md, "Where the gap was"), timed layer by layer against torch and against Jittor's
own version, in one run: bilinear x2 resize and training-mode BatchNorm (forward + backward)
at the feature-map sizes of a width-64 UNet at 128x128, batch 4, and one Adam step over 19M
weights (gradients of sum(w^2), cheap, in both frameworks). Prints a table of milliseconds
(median of --repeats after 2 warm-up) and the ratios to torch. Needs the jittor environment:

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_jittor_layers.py [--repeats 9]
"""

from __future__ import annotations

import argparse

import numpy as np

from jmedbench.engine.profiling import median_ms

WARMUP = 2


def resize_cases(jt, torch, timed):
    import torch.nn.functional as F
    from jittor import nn

    from jmedbench_jittor.layers import resize_bilinear

    for channels, size in [(512, 8), (256, 16), (128, 32), (64, 64)]:
        x = np.random.default_rng(0).normal(size=(4, channels, size, size)).astype(np.float32)
        out = (2 * size, 2 * size)
        tx, jx = torch.from_numpy(x).requires_grad_(True), jt.array(x)

        def torch_run():
            tx.grad = None
            F.interpolate(tx, size=out, mode="bilinear", align_corners=False).sum().backward()

        def jittor_run(resize):
            def run():
                y = resize(jx)
                jt.sync([y, jt.grad(y.sum(), jx)])
            return run

        own = jittor_run(lambda v: nn.interpolate(v, size=out, mode="bilinear",
                                                  align_corners=False))
        yield (f"resize x2 {channels}ch {size}->{2 * size}", timed(torch_run),
               timed(own), timed(jittor_run(lambda v: resize_bilinear(v, out))))


def batch_norm_cases(jt, torch, timed):
    from jittor import nn

    from jmedbench_jittor.layers import BatchNorm2d

    for channels, size in [(64, 128), (128, 64), (256, 32), (512, 16)]:
        x = np.random.default_rng(0).normal(size=(4, channels, size, size)).astype(np.float32)
        tx, jx = torch.from_numpy(x).requires_grad_(True), jt.array(x)
        torch_bn = torch.nn.BatchNorm2d(channels).train()

        def torch_run():
            tx.grad = None
            torch_bn.zero_grad()
            torch_bn(tx).sum().backward()

        def jittor_run(layer):
            layer.train()

            def run():
                y = layer(jx)
                jt.sync([y] + jt.grad(y.sum(), [jx, layer.weight, layer.bias]))
            return run

        yield (f"batch norm {channels}ch {size}x{size}", timed(torch_run),
               timed(jittor_run(nn.BatchNorm2d(channels))),
               timed(jittor_run(BatchNorm2d(channels))))


def adam_case(jt, torch, timed):
    from jmedbench_jittor.kernels import Adam

    shapes = [(512, 512, 3, 3)] * 6 + [(256, 256, 3, 3)] * 4 + [(1024, 256, 3, 3)] + [(64,)] * 30
    arrays = [np.random.default_rng(i).normal(size=s).astype(np.float32)
              for i, s in enumerate(shapes)]
    torch_params = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays]
    torch_opt = torch.optim.Adam(torch_params, lr=1e-4)

    def torch_run():
        torch_opt.zero_grad(set_to_none=True)
        sum((p * p).sum() for p in torch_params).backward()  # gradients 2p: cheap
        torch_opt.step()

    def jittor_run(make):
        params = [jt.array(a) for a in arrays]
        optimiser = make(params)

        def run():
            optimiser.step(sum((p * p).sum() for p in params))
            jt.sync_all()
        return run

    millions = sum(a.size for a in arrays) / 1e6
    yield (f"adam step {millions:.0f}M weights", timed(torch_run),
           timed(jittor_run(lambda p: jt.optim.Adam(p, lr=1e-4))),
           timed(jittor_run(lambda p: Adam(p, lr=1e-4))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    import torch

    from jmedbench_jittor.runtime import import_jittor

    jt = import_jittor()

    def timed(run) -> float:
        return median_ms(run, args.repeats, WARMUP)

    print("| layer (forward + backward) | torch ms | jittor's own ms | jmedbench's ms "
          "| own / torch | jmedbench / torch |")
    print("|---|---|---|---|---|---|")
    for cases in (resize_cases, batch_norm_cases, adam_case):
        for name, torch_ms, own_ms, ours_ms in cases(jt, torch, timed):
            print(f"| {name} | {torch_ms:.2f} | {own_ms:.2f} | {ours_ms:.2f} "
                  f"| {own_ms / torch_ms:.2f} | {ours_ms / torch_ms:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
