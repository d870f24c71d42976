"""Jittor against PyTorch, per Jittor model: forward (batch 1, eval) and training step (forward,
Dice + CE, backward, Adam) times of the torch model and its Jittor twin holding the same
weights, measured in one run, alternating torch and Jittor repeat by repeat; printed as a table
with ratios (Jittor time / torch time; above 1 Jittor is slower). Needs the jittor environment
(see docs/jittor.md):

    python benchmarks/bench_jittor.py [--size 128] [--batch 4] [--width 32] [--repeats 5]
                                      [--threads N] [--models unet,enet] [--json FILE]

``--width`` overrides the width of the models that take one (default: each model's own).
The same numbers, one model at a time: ``jmedbench profile --backend jittor --model NAME``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (Jittor uses OpenMP's, OMP_NUM_THREADS)")
    parser.add_argument("--models", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()

    import torch

    from jmedbench.registry import get_registry
    from jmedbench_jittor import JITTOR_MODELS
    from jmedbench_jittor.runtime import import_jittor, onednn_in_use
    from jmedbench_jittor.speed import build_pair, compare

    if args.threads:
        torch.set_num_threads(args.threads)
    jt = import_jittor()
    registry = get_registry()
    names = args.models.split(",") if args.models else sorted(JITTOR_MODELS)
    print(f"# Jittor {jt.__version__} (oneDNN {'on' if onednn_in_use() else 'OFF'}) vs torch "
          f"{torch.__version__}, {torch.get_num_threads()} torch thread(s), "
          f"{platform.processor() or platform.machine()}; size {args.size}, train batch "
          f"{args.batch}, median of {args.repeats} after {args.warmup} warm-up")
    header = ("model", "torch fwd ms", "jittor fwd ms", "fwd ratio", "torch step ms",
              "jittor step ms", "step ratio")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    rows = []
    for name in names:
        options = {"width": args.width} if args.width else {}
        t0 = time.perf_counter()
        _, torch_model, jittor_model, kwargs = build_pair(registry, name, options)
        r = compare(torch_model, jittor_model, args.size, args.batch, args.repeats, args.warmup)
        rows.append({"model": name, "options": kwargs, **r,
                     "seconds": round(time.perf_counter() - t0, 1)})
        print(f"| {name} | {r['torch_forward_ms']:.1f} | {r['forward_ms']:.1f} | "
              f"{r['forward_ratio']:.2f} | {r['torch_train_step_ms']:.1f} | "
              f"{r['train_step_ms']:.1f} | {r['train_step_ratio']:.2f} |", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"size": args.size, "batch": args.batch, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
