"""The engine's optimiser (engine.train.adam): torch's fused Adam where the device has it, the
same algorithm as torch's default Adam."""

from __future__ import annotations

import pytest
import torch

from jmedbench.engine.train import adam, backward_and_step


def _problem(seed: int):
    generator = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(6, 3, 3, padding=1))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    x = torch.randn(4, 1, 12, 12, generator=generator)
    y = torch.randint(0, 3, (4, 12, 12), generator=generator)
    return model, x, y


def _train(optimiser_for, seed: int, steps: int = 40) -> list[torch.Tensor]:
    model, x, y = _problem(seed)
    optimiser = optimiser_for(list(model.parameters()))
    for _ in range(steps):
        backward_and_step(torch.nn.functional.cross_entropy(model(x), y), optimiser)
    return [p.detach() for p in model.parameters()]


def test_on_the_cpu_the_engine_uses_the_fused_kernel():
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert adam(params, lr=1e-3).defaults["fused"] is True


def test_on_a_device_without_the_kernel_it_is_torchs_default():
    params = [torch.nn.Parameter(torch.zeros(3, device="meta"))]
    assert not adam(params, lr=1e-3).defaults["fused"]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_fused_steps_follow_torchs_default_adam(seed, weight_decay):
    """40 steps on a small conv net from 5 random starts: the fused and the per-tensor Adam
    end at the same weights up to rounding (they differ only in the order of operations)."""
    fused = _train(lambda p: adam(p, lr=1e-2, weight_decay=weight_decay), seed)
    loop = _train(lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=weight_decay,
                                             foreach=False, fused=False), seed)
    for a, b in zip(fused, loop):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
