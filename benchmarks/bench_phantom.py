"""Phantom generation speed on one core: slices per second at 128 x 128 (the goal is >= 100).

    python benchmarks/bench_phantom.py [--size 128] [--subjects 24] [--slices 8] [--repeats 3]

Generates whole datasets (noise banks, anatomy, rendering, Johnson-Su texture: everything a run
pays for) from site N only, site S only and the default mix, with
BLAS/OpenMP pinned to one thread. Prints the best of ``repeats`` in slices per wall-clock second
and per CPU second (process time, less sensitive to other work on a shared machine), each
as a ratio to the 100 slices/s goal, and site S's rate over site N's. The disk cache is turned
off (JMEDBENCH_CACHE=off): this measures rendering. The default mix is 32+2+40 N and 40 S
subjects (the default profile).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ["JMEDBENCH_CACHE"] = "off"

import argparse  # noqa: E402
import time  # noqa: E402

from jmedbench_phantom.dataset import make_phantom_dataset  # noqa: E402

GOAL = 100.0  # issue 17: at least 100 slices per second per core at 128 px


def measure(options: dict, repeats: int) -> tuple[float, float, int]:
    best_wall, best_cpu, slices = 0.0, 0.0, 0
    for repeat in range(repeats):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        dataset = make_phantom_dataset(seed=repeat, **options)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        slices = sum(s.n_slices for subjects in dataset.splits.values() for s in subjects)
        best_wall, best_cpu = max(best_wall, slices / wall), max(best_cpu, slices / cpu)
    return best_wall, best_cpu, slices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--subjects", type=int, default=24)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n = args.subjects
    cases = {
        "site N": dict(train_subjects=n, val_subjects=0, test_subjects=0, shift_subjects=0),
        "site S": dict(train_subjects=1, val_subjects=0, test_subjects=0, shift_subjects=n - 1),
        "default mix": dict(train_subjects=32, val_subjects=2, test_subjects=40,
                            shift_subjects=40),
    }
    print(f"phantom generation at {args.size}x{args.size}, {args.slices} slices per subject, "
          f"one thread, best of {args.repeats}")
    cpu_rate = {}
    for name, counts in cases.items():
        wall, cpu, slices = measure({"image_size": args.size, "slices_per_subject": args.slices,
                                     **counts}, args.repeats)
        cpu_rate[name] = cpu
        print(f"  {name:<12} {slices:4d} slices: {wall:7.0f} slices/s wall ({wall / GOAL:4.2f}x "
              f"goal), {cpu:7.0f} slices/s CPU ({cpu / GOAL:4.2f}x goal)")
    # The same process and seeds for both sites: the ratio holds on a loaded machine better
    # than either rate does.
    print(f"  site S / site N slices per CPU second: {cpu_rate['site S'] / cpu_rate['site N']:.2f}")


if __name__ == "__main__":
    main()
