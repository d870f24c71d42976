"""One training step of every registered torch model at the default profile's settings
(its options, e.g. width, 128 px, batch 4, Adam, Dice + CE, fp32 on the CPU), against the zoo's ``unet`` (baseline).
``-k NAME`` picks models; all of them take a few minutes."""

from __future__ import annotations

import pytest
import torch

from jmedbench.config import build_config
from jmedbench.engine.build import build_model
from jmedbench.engine.train import adam, backward_and_step, dice_ce_loss
from jmedbench.labels import IN_CHANNELS, NUM_CLASSES
from jmedbench.registry import get_registry

SIZE, BATCH = 128, 4


def _model_names():
    specs = [s for s in get_registry().specs("models") if s.backend == "torch"
             and s.side_problem(SIZE) is None]
    return sorted(s.name for s in specs)


@pytest.mark.benchmark(group="model-train-step")
@pytest.mark.parametrize("name", _model_names())
def test_model_training_step(benchmark, registry, name):
    torch.manual_seed(0)
    model, _ = build_model(registry, build_config("default", overrides={"model": name}))
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, IN_CHANNELS, SIZE, SIZE, generator=generator)
    y = torch.randint(0, NUM_CLASSES, (BATCH, SIZE, SIZE), generator=generator)
    weights = torch.ones(NUM_CLASSES)
    optimiser = adam(list(model.parameters()), lr=3e-4)
    model.train()

    def step():
        backward_and_step(dice_ce_loss(model(x), y, weights), optimiser)
    benchmark.extra_info["params"] = sum(p.numel() for p in model.parameters())
    benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1)
