"""Training speed: number formats and layouts, torch.compile, the engine against a bare loop,
and the share of a step spent on the data path.

Groups (each with its baseline in the same run):

- ``train-step``: one training step of the default profile's UNet (width 16, batch 4, 128 px,
  Adam, Dice + CE) in fp32 (baseline), fp32 + channels_last, bf16 autocast, bf16 +
  channels_last, and torch.compile. bf16 is skipped on CPUs without native bf16 (AVX-512 BF16
  or AMX), where it is emulated and many times slower (set ``JMEDBENCH_BENCH_BF16=1`` to time it
  anyway).
- ``engine-vs-bare``: 20 steps of the engine's ``train_supervised`` against a bare PyTorch
  loop with the same model, batches and loss (baseline).
- ``optimiser-step``: one Adam step over the weights of the default UNet and of smp's
  ResNet-34 U-Net (24 M parameters; skipped without the ``smp`` extra), with torch's default
  per-tensor loop on the CPU (baseline) and with the fused kernel the engine uses
  (:func:`jmedbench.engine.train.adam`).
- ``data-path``: drawing and augmenting one batch with ``sas`` (what a step does outside
  forward/backward/optimiser) against the full step (baseline); the ratio is the fraction.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch

from jmedbench.engine.build import build_model, build_strategy
from jmedbench.engine.devices import cpu_has_fast_bf16, resolve_execution
from jmedbench.engine.train import (adam, backward_and_step, class_weights, dice_ce_loss,
                                    train_supervised)
from jmedbench.labels import NUM_CLASSES

BF16_NATIVE = cpu_has_fast_bf16() or os.environ.get("JMEDBENCH_BENCH_BF16") == "1"


@pytest.fixture(scope="module")
def model_and_batch(registry, default_cfg, training_data):
    torch.manual_seed(0)
    model, _ = build_model(registry, default_cfg)
    inputs, labels = training_data
    generator = torch.Generator().manual_seed(0)
    index = torch.randint(inputs.shape[0], (default_cfg.train.batch_size,), generator=generator)
    weights = torch.from_numpy(class_weights(labels.numpy(), NUM_CLASSES))
    return model, inputs[index], labels[index], weights


def _step_function(model, x, y, weights, execution, compiled=False):
    model = execution.place_model(copy.deepcopy(model))
    x, y = execution.place_batch(x), execution.to_device(y)
    step_model = torch.compile(model) if compiled else model
    optimiser = adam(list(model.parameters()), lr=3e-4)
    model.train()

    def step():
        with execution.autocast():
            logits = step_model(x)
        loss = dice_ce_loss(logits.float(), y, weights)
        backward_and_step(loss, optimiser)
        return loss.item()
    return step


@pytest.mark.benchmark(group="train-step")
@pytest.mark.parametrize("precision,layout,compiled", [
    ("fp32", "off", False), ("fp32", "on", False), ("bf16", "off", False),
    ("bf16", "on", False), ("fp32", "off", True)],
    ids=["fp32 (baseline)", "fp32+channels_last", "bf16", "bf16+channels_last",
         "fp32+compile"])
def test_train_step(benchmark, model_and_batch, precision, layout, compiled):
    if precision == "bf16" and not BF16_NATIVE:
        pytest.skip("this CPU has no native bf16 (emulated: many times slower than fp32)")
    model, x, y, weights = model_and_batch
    execution = resolve_execution("cpu", precision, layout)
    step = _step_function(model, x, y, weights, execution, compiled)
    for _ in range(3 if compiled else 1):  # warm-up; compile happens here
        step()
    benchmark.extra_info.update(execution.to_dict())
    benchmark.pedantic(step, rounds=8, iterations=1, warmup_rounds=1)


def _bare_loop(model, inputs, labels, weights, steps, batch, seed):
    generator = torch.Generator().manual_seed(seed)
    optimiser = adam(list(model.parameters()), lr=3e-4)  # the engine's optimiser
    model.train()
    for _ in range(steps):
        index = torch.randint(inputs.shape[0], (batch,), generator=generator)
        loss = dice_ce_loss(model(inputs[index]), labels[index], weights)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        loss.item()


@pytest.mark.benchmark(group="engine-vs-bare")
@pytest.mark.parametrize("loop", ["bare PyTorch (baseline)", "engine"])
def test_engine_against_a_bare_loop(benchmark, registry, default_cfg, training_data,
                                    model_and_batch, loop):
    from jmedbench.strategy import Strategy

    model = copy.deepcopy(model_and_batch[0])
    inputs, labels = training_data
    weights = model_and_batch[3]
    cfg = copy.deepcopy(default_cfg.train)
    cfg.steps = 20
    if loop == "engine":
        run = lambda: train_supervised(model, Strategy(), inputs, labels, cfg, 0, NUM_CLASSES,
                                       execution=resolve_execution("cpu", "fp32", "off"))
    else:
        run = lambda: _bare_loop(model, inputs, labels, weights, cfg.steps, cfg.batch_size, 0)
    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="data-path")
@pytest.mark.parametrize("part", ["full step (baseline)", "draw + sas augment"])
def test_data_path_share_of_a_step(benchmark, registry, default_cfg, training_data,
                                   model_and_batch, part):
    inputs, labels = training_data
    strategy = build_strategy(registry, "sas", {"ssl_iterations": 0})
    generator = torch.Generator().manual_seed(0)
    model, _, _, weights = model_and_batch
    execution = resolve_execution("cpu", "fp32", "off")
    batch = default_cfg.train.batch_size

    def draw():
        index = torch.randint(inputs.shape[0], (batch,), generator=generator)
        return strategy.augment(inputs[index], labels[index], generator)

    if part == "draw + sas augment":
        benchmark.pedantic(draw, rounds=50, iterations=1, warmup_rounds=2)
        return
    x, y = draw()
    step = _step_function(model, x, y, weights, execution)

    def full():
        draw()
        step()
    benchmark.pedantic(full, rounds=8, iterations=1, warmup_rounds=1)


def _optimiser_model(model_and_batch, name):
    if name == "default UNet":
        return copy.deepcopy(model_and_batch[0])
    smp = pytest.importorskip("segmentation_models_pytorch")
    torch.manual_seed(0)
    return smp.Unet("resnet34", encoder_weights=None, in_channels=1, classes=NUM_CLASSES)


@pytest.mark.benchmark(group="optimiser-step")
@pytest.mark.parametrize("name", ["default UNet", "smp ResNet-34 U-Net"])
@pytest.mark.parametrize("kernel", ["per-tensor (baseline)", "fused (engine)"])
def test_adam_step(benchmark, model_and_batch, name, kernel):
    model = _optimiser_model(model_and_batch, name)
    params = list(model.parameters())
    generator = torch.Generator().manual_seed(0)
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator)
    optimiser = (adam(params, lr=3e-4) if kernel.startswith("fused")
                 else torch.optim.Adam(params, lr=3e-4, foreach=False, fused=False))
    benchmark.extra_info["params"] = sum(p.numel() for p in params)
    benchmark.pedantic(optimiser.step, rounds=20, iterations=1, warmup_rounds=2)
