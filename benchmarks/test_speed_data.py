"""Rendering the phantom and corrupting slices.

- ``phantom``: a dataset of 12 subjects x 8 slices at 128 px rendered from site N (baseline) and
  from site S (5 mm slabs), the disk cache off, BLAS on one thread; ``extra_info`` has
  slices per second (the goal is >= 100 per core).
- ``corruptions``: each registered corruption at severity 3 on one 128 px phantom slice against
  copying the slice (baseline: the floor of any corruption).
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

SUBJECTS, SLICES = 12, 8


@pytest.mark.benchmark(group="phantom")
@pytest.mark.parametrize("site", ["N (baseline)", "S"])
def test_phantom_rendering(benchmark, monkeypatch, site):
    from jmedbench_phantom.dataset import make_phantom_dataset

    monkeypatch.setenv("JMEDBENCH_CACHE", "off")
    counts = (dict(train_subjects=SUBJECTS, val_subjects=0, test_subjects=0, shift_subjects=0)
              if site.startswith("N") else
              dict(train_subjects=1, val_subjects=0, test_subjects=0,
                   shift_subjects=SUBJECTS - 1))

    def render():
        with threadpool_limits(1):
            return make_phantom_dataset(seed=0, image_size=128, slices_per_subject=SLICES,
                                        **counts)
    dataset = benchmark.pedantic(render, rounds=3, iterations=1, warmup_rounds=1)
    slices = sum(s.n_slices for subjects in dataset.splits.values() for s in subjects)
    benchmark.extra_info["slices"] = slices
    if benchmark.stats:  # None with --benchmark-disable (a smoke run)
        benchmark.extra_info["slices_per_second"] = round(slices / benchmark.stats.stats.min, 1)


@pytest.fixture(scope="module")
def one_slice(registry):
    from jmedbench.config import build_config
    from jmedbench.engine.build import build_dataset

    subject = build_dataset(registry, build_config("quick", overrides={
        "data.image_size": 128})).split("test")[0]
    return subject.image[0], subject.label[0]


def _corruption_names():
    from jmedbench.registry import get_registry
    return ["copy (baseline)"] + [s.name for s in get_registry().specs("corruptions")]


@pytest.mark.benchmark(group="corruptions")
@pytest.mark.parametrize("name", _corruption_names())
def test_corruption(benchmark, registry, one_slice, name):
    image, label = one_slice
    if name.startswith("copy"):
        benchmark(lambda: (image.copy(), label.copy()))
        return
    spec = registry.get("corruptions", name)
    spec.apply(image, label, 3, np.random.default_rng(0))  # warm-up (projector cache)
    benchmark.pedantic(lambda: spec.apply(image, label, 3, np.random.default_rng(1)),
                       rounds=5, iterations=1)
