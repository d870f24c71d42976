"""The speed suite (pytest-benchmark): run it on a quiet machine, never beside the tests.

    pytest benchmarks --benchmark-enable --benchmark-autosave      # saves .benchmarks/*.json
    pytest benchmarks --benchmark-enable --benchmark-compare       # against the last saved run
    pytest-benchmark compare --group-by=group                      # saved runs side by side

Every group holds the thing measured and its baseline, timed in the same run (the ratio is what
carries across machines). Not part of the default test run: ``testpaths`` in pyproject.toml
names tests/ only, and ``--benchmark-disable`` there is overridden by ``--benchmark-enable``.
"""

from __future__ import annotations

import pytest
import torch

from jmedbench.config import build_config
from jmedbench.data import stack_slices
from jmedbench.engine.backends import to_input
from jmedbench.engine.build import build_dataset
from jmedbench.registry import get_registry

SIZE = 128   # the default profile's view
BATCH = 4    # the default profile's batch


@pytest.fixture(scope="session")
def registry():
    return get_registry()


@pytest.fixture(scope="session")
def default_cfg():
    return build_config("default", overrides={"model": "unet", "strategy": "baseline"})


@pytest.fixture(scope="session")
def training_data(registry, default_cfg):
    """The default profile's training slices as model inputs and labels (from the cache)."""
    images, labels = stack_slices(build_dataset(registry, default_cfg).split("train"))
    return to_input(images), torch.from_numpy(labels)
