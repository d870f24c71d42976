"""The Johnson-Su fit against scipy.stats.johnsonsu.fit (baseline) on the same sample: 100,000
integer HU drawn from the paper's Figure 6 fit (a=-1.89, b=2.85, loc=37.43, scale=143.84)."""

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
