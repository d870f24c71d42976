"""The Johnson-Su fit against scipy.stats.johnsonsu.fit (baseline) on the same samples: 100,000
integer HU drawn from the paper's Figure 6 fit (a=-1.89, b=2.85, loc=37.43, scale=143.84), and
the size a benchmark run fits most often: 20 subjects' cancellous masks at the leaderboard
profile (200-1,500 integer HU each, a cancellous-like Johnson-Su), fitted one after another."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from jmedbench.density.johnsonsu import fit_johnson_su

PAPER = dict(a=-1.89, b=2.85, loc=37.43, scale=143.84)


@pytest.fixture(scope="module")
def sample():
    values = stats.johnsonsu.rvs(PAPER["a"], PAPER["b"], PAPER["loc"], PAPER["scale"],
                                 size=100_000, random_state=np.random.default_rng(0))
    return np.round(values)


@pytest.mark.benchmark(group="johnson-su-100k")
@pytest.mark.parametrize("fit", ["scipy (baseline)", "jmedbench"])
def test_johnson_su_fit(benchmark, sample, fit):
    if fit == "jmedbench":
        benchmark.pedantic(fit_johnson_su, args=(sample,), rounds=5, iterations=1,
                           warmup_rounds=1)
    else:
        benchmark.pedantic(stats.johnsonsu.fit, args=(sample,), rounds=2, iterations=1)


@pytest.fixture(scope="module")
def subject_samples():
    rng = np.random.default_rng(0)
    return [np.round(stats.johnsonsu.rvs(-0.8, 1.2, loc=150, scale=60,
                                         size=int(rng.integers(200, 1500)), random_state=rng))
            for _ in range(20)]


@pytest.mark.benchmark(group="johnson-su-20-subjects")
@pytest.mark.parametrize("fit", ["scipy (baseline)", "jmedbench"])
def test_johnson_su_fit_per_subject(benchmark, subject_samples, fit):
    method = fit_johnson_su if fit == "jmedbench" else stats.johnsonsu.fit
    benchmark.pedantic(lambda: [method(v) for v in subject_samples], rounds=3, iterations=1,
                       warmup_rounds=1 if fit == "jmedbench" else 0)
