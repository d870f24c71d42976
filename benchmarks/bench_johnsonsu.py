"""Speed and agreement of jmedbench's Johnson-Su fit against scipy.stats.johnsonsu.fit, measured
in the same run on the same samples.

    python benchmarks/bench_johnsonsu.py                 # 500k values, the acceptance size
    python benchmarks/bench_johnsonsu.py --sizes 10000,100000,500000 --repeats 5
    python benchmarks/bench_johnsonsu.py --sizes 0 --agreement 40 --agreement-size 10000

For each size: an integer-HU sample (CT values are integers: the fit is exact there) and the same
sample before rounding (floats: the fit rounds to a grid of min(1, IQR/256) HU for the search,
then reports the exact log-likelihood). Printed: best-of-``repeats`` wall time of ours, one
scipy fit's time, the ratio, the mode difference (HU) and the log-likelihood difference (ours
minus scipy's, nats; >= 0 means ours is at least as likely). Parameters: the paper's Figure 6
fit in HU (a=-1.89, b=2.85, loc=37.43, scale=143.84).

``--agreement N``: N random parameter sets (a in [-3, 3], b in [0.6, 4], scale in [20, 200] HU)
at ``--agreement-size`` integer values; summarises how far the modes are apart where scipy's
fit reached the optimum (log-likelihood within 1e-3 nats of ours) and lists the sets where it
stopped short.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from scipy import stats

from jmedbench.density.johnsonsu import fit_johnson_su, johnson_su_mode

FIGURE6_HU = (-1.89, 2.85, 1061.43 - 1024.0, 143.84)


def best_time(func, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500000")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of our fit (best of)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--agreement", type=int, default=0, metavar="N")
    parser.add_argument("--agreement-size", type=int, default=10_000)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"scipy {__import__('scipy').__version__}, {platform.machine()}")
    print(f"{'n':>9} {'data':>7} {'ours ms':>9} {'scipy s':>8} {'ratio':>7} "
          f"{'mode ours':>10} {'mode scipy':>10} {'d mode':>8} {'d loglik':>9} {'iters':>5}")
    rng = np.random.default_rng(args.seed)
    a, b, loc, scale = FIGURE6_HU
    for n in (int(s) for s in args.sizes.split(",") if int(s) > 0):
        raw = loc + scale * np.sinh((rng.standard_normal(n) - a) / b)
        for kind, x in (("integer", np.rint(raw)), ("float", raw)):
            ours_s, ours = best_time(lambda: fit_johnson_su(x), args.repeats)
            scipy_s, theirs = best_time(lambda: stats.johnsonsu.fit(x), 1)
            mode_scipy = johnson_su_mode(*theirs)
            loglik_scipy = -stats.johnsonsu.nnlf(theirs, x)
            print(f"{n:>9} {kind:>7} {ours_s * 1e3:>9.1f} {scipy_s:>8.2f} "
                  f"{scipy_s / ours_s:>6.0f}x {ours.mode:>10.3f} {mode_scipy:>10.3f} "
                  f"{ours.mode - mode_scipy:>8.4f} {ours.loglik - loglik_scipy:>9.4f} "
                  f"{ours.iterations:>5}", flush=True)
    print(f"true mode of the generating distribution: {johnson_su_mode(*FIGURE6_HU):.3f} HU")
    if args.agreement:
        agreement(args.agreement, args.agreement_size, rng)


def agreement(sets: int, n: int, rng: np.random.Generator) -> None:
    equal, short, ahead = [], [], []  # scipy at our optimum / short of it / ahead of us
    for _ in range(sets):
        a, b = rng.uniform(-3, 3), rng.uniform(0.6, 4)
        scale, loc = rng.uniform(20, 200), rng.uniform(0, 300)
        x = np.rint(loc + scale * np.sinh((rng.standard_normal(n) - a) / b))
        ours = fit_johnson_su(x)
        theirs = stats.johnsonsu.fit(x)
        gain = ours.loglik + stats.johnsonsu.nnlf(theirs, x)  # ours minus scipy's
        row = (a, b, scale, ours.mode - johnson_su_mode(*theirs), gain, ours.converged)
        (short if gain > 1e-3 else ahead if gain < -1e-3 else equal).append(row)
    print(f"agreement, {sets} random parameter sets at {n} integer values:")
    if equal:
        print(f"  same log-likelihood (within 1e-3 nats) in {len(equal)}: largest |mode "
              f"difference| {max(abs(r[3]) for r in equal):.2e} HU; ours converged in "
              f"{sum(r[5] for r in equal)}/{len(equal)}")
    for name, rows in (("scipy short of our optimum", short), ("scipy ahead of ours", ahead)):
        print(f"  {name} by > 1e-3 nats in {len(rows)}")
        for a, b, scale, d_mode, gain, _ in rows:
            print(f"    a={a:.2f} b={b:.2f} scale={scale:.0f}: ours minus scipy {gain:+.3f} "
                  f"nats, mode difference {d_mode:+.3f} HU")


if __name__ == "__main__":
    main()
