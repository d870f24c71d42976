"""The engine's optimiser (engine.train.adam: torch's fused Adam where the device has it, the
same algorithm as torch's default Adam), its learning-rate schedule (engine.train.learning_rate)
and weight averaging (engine.train.WeightAverage, ``[train] average_last``)."""

from __future__ import annotations

import math

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


def _train_cfg(schedule: str, steps: int = 400, lr: float = 1e-3):
    from jmedbench.config import TrainConfig

    return TrainConfig(steps=steps, batch_size=2, lr=lr, lr_schedule=schedule)


@pytest.mark.parametrize("steps", [1, 2, 7, 400, 1500])
def test_the_cosine_schedule_falls_from_lr_to_near_zero_halfway_at_half(steps):
    from jmedbench.engine.train import learning_rate

    cfg = _train_cfg("cosine", steps)
    rates = [learning_rate(cfg, s) for s in range(1, steps + 1)]
    assert rates[0] == cfg.lr                                       # the first step at lr
    assert all(a >= b for a, b in zip(rates, rates[1:]))            # never rises
    assert 0 < rates[-1] <= cfg.lr * max(0.5, (math.pi / steps) ** 2)  # last: small, not 0
    if steps % 2 == 0:
        assert rates[steps // 2] == pytest.approx(cfg.lr / 2)       # step steps/2 + 1: half
    constant = _train_cfg("constant", steps)
    assert {learning_rate(constant, s) for s in range(1, steps + 1)} == {constant.lr}


def test_training_follows_the_schedule():
    """The same seed and data with each schedule: the first two losses agree (the first step
    is at lr with both), the later ones differ (the cosine's steps are smaller)."""
    from jmedbench.engine.train import train_supervised
    from jmedbench.strategy import Strategy

    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(6, 1, 16, 16, generator=generator)
    labels = torch.randint(0, 3, (6, 16, 16), generator=generator)
    losses = {}
    for schedule in ("constant", "cosine"):
        model, _, _ = _problem(1)
        result = train_supervised(model, Strategy(), inputs, labels,
                                  _train_cfg(schedule, steps=12, lr=5e-2), seed=0,
                                  num_classes=3, log_every=1)
        losses[schedule] = result.losses
    assert losses["constant"][:2] == losses["cosine"][:2]
    assert all(a != b for a, b in zip(losses["constant"][3:], losses["cosine"][3:]))


def _bn_problem():
    """The same small conv net with batch norm at every call (the global generator untouched)."""
    with torch.random.fork_rng():
        torch.manual_seed(3)
        return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                   torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 1))


@pytest.mark.parametrize("average_last, averaged_steps", [(0.25, 3), (1.0, 12), (0.01, 1)])
def test_weight_averaging_is_the_mean_of_the_last_steps_weights(average_last, averaged_steps):
    """12 steps with ``average_last``: the weights at the end are the equal-weight mean of those
    after each of the last steps of the same run without averaging (same seed, same batches;
    0.01 of 12 steps is the last step alone), and the batch-norm statistics are those of the
    averaged weights on the training images: the mean and (unbiased) variance of the first
    convolution's outputs."""
    from jmedbench.config import TrainConfig
    from jmedbench.engine.train import train_supervised
    from jmedbench.strategy import Strategy

    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(6, 1, 16, 16, generator=generator)
    labels = torch.randint(0, 3, (6, 16, 16), generator=generator)
    plain, after_each = _bn_problem(), []
    train_supervised(plain, Strategy(), inputs, labels,
                     TrainConfig(steps=12, batch_size=2, lr=5e-2), seed=0, num_classes=3,
                     log_every=1, on_log=lambda step, loss: after_each.append(
                         {k: v.detach().double().clone()
                          for k, v in plain.named_parameters()}))
    averaged = _bn_problem()
    train_supervised(averaged, Strategy(), inputs, labels,
                     TrainConfig(steps=12, batch_size=2, lr=5e-2, average_last=average_last),
                     seed=0, num_classes=3)
    last = after_each[-averaged_steps:]
    for name, value in averaged.named_parameters():
        expected = sum(state[name] for state in last) / averaged_steps
        torch.testing.assert_close(value.detach().double(), expected, rtol=1e-5, atol=1e-6,
                                   msg=name)
    with torch.no_grad():
        first = averaged[0](inputs).double()
    norm = averaged[1]
    torch.testing.assert_close(norm.running_mean.double(), first.mean(dim=(0, 2, 3)),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(norm.running_var.double(),
                               first.var(dim=(0, 2, 3), unbiased=True), rtol=1e-5, atol=1e-6)
    assert norm.momentum == 0.1  # restored for whoever trains the model next
    final = after_each[-1]["0.weight"]
    assert averaged_steps == 1 or not torch.allclose(averaged[0].weight.double(), final)
    assert not torch.allclose(after_each[0]["0.weight"], final)


def test_a_backend_that_does_not_average_weights_refuses_average_last(registry, monkeypatch):
    """(The Jittor backend is such a backend: tests/test_jittor.py checks it where it runs.)"""
    from jmedbench.config import build_config
    from jmedbench.engine.backends import TorchBackend
    from jmedbench.engine.pipeline import run_backend
    from jmedbench.errors import UserError

    cfg = build_config("quick", overrides={"train.average_last": 0.5})
    assert run_backend(registry, cfg).name == "torch"
    monkeypatch.setattr(TorchBackend, "averages_weights", False)
    with pytest.raises(UserError) as err:
        run_backend(registry, cfg)
    assert str(err.value) == ("train.average_last 0.5: the torch backend does not average "
                              "weights (set it to 0, or use --backend torch)")
