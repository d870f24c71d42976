"""Supervised training, the same for every model and strategy: Adam, Dice + weighted
cross-entropy, random batches drawn by a seeded generator. Strategies hook in through
:class:`jmedbench.strategy.Strategy` (augment per batch)."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from jmedbench.config import CLASS_WEIGHTINGS, TrainConfig
from jmedbench.engine.progress import Reporter
from jmedbench.strategy import Strategy


def class_weights(labels: np.ndarray, num_classes: int,
                  weighting: str = "median-frequency") -> np.ndarray:
    """The cross-entropy's class weights (``[train] class_weighting``).

    ``median-frequency`` (Eigen & Fergus 2015): w_c = median(f) / f_c, where f_c is the pixel
    frequency of class c. ``none``: every class 1 (nnU-Net's plain cross-entropy; the soft Dice
    term already balances the classes). Either way classes absent from the data get weight 0
    (nothing to learn) and the weights are normalised to mean 1 over the present classes."""
    if weighting not in CLASS_WEIGHTINGS:
        raise ValueError(f"class weighting {weighting!r}: expected one of {CLASS_WEIGHTINGS}")
    counts = np.bincount(labels.ravel(), minlength=num_classes).astype(np.float64)
    freq = counts / counts.sum()
    present = freq > 0
    weights = np.zeros(num_classes)
    if weighting == "none":
        weights[present] = 1.0
    else:
        weights[present] = np.median(freq[present]) / freq[present]
    weights[present] /= weights[present].mean()
    return weights.astype(np.float32)


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
                 smooth: float = 1.0) -> torch.Tensor:
    """Weighted cross-entropy + soft Dice over the foreground classes (batch-pooled)."""
    ce = F.cross_entropy(logits, target, weight=weights)
    probs = logits.softmax(dim=1)[:, 1:]
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(probs.dtype)
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + smooth) / (denom + smooth)
    return ce + (1 - dice).mean()


@dataclass
class TrainResult:
    steps: int
    seconds: float
    images_seen: int
    losses: list[float] = field(default_factory=list)  # mean loss per logged interval
    class_weights: list[float] = field(default_factory=list)
    peak_device_mib: float | None = None  # CUDA: peak memory allocated while training

    @property
    def images_per_second(self) -> float:
        return self.images_seen / self.seconds if self.seconds else 0.0


class LossLog:
    """The bookkeeping every backend's training loop shares: mean loss per ``log_every`` steps
    into ``result.losses``, progress, and the ``on_log(step, mean_loss)`` callback (after which
    the model is put back in training mode: tuning may evaluate it)."""

    def __init__(self, result: TrainResult, model: Any, reporter: Reporter,
                 log_every: int = 50, on_log: Callable[[int, float], None] | None = None):
        self.result, self.model, self.reporter = result, model, reporter
        self.log_every, self.on_log = log_every, on_log
        self.running = 0.0
        self.t0 = time.perf_counter()
        reporter.start("train", result.steps)

    def add(self, step: int, loss: float) -> None:
        self.running += loss
        if step % self.log_every and step != self.result.steps:
            return
        interval = (step - 1) % self.log_every + 1
        self.result.losses.append(self.running / interval)
        self.reporter.advance("train", interval, note=f"loss {self.running / interval:.3f}")
        self.running = 0.0
        if self.on_log is not None:
            self.on_log(step, self.result.losses[-1])
            self.model.train()

    def finish(self) -> TrainResult:
        self.result.seconds = time.perf_counter() - self.t0
        self.reporter.finish("train")
        self.model.eval()
        return self.result


def train_supervised(model: torch.nn.Module, strategy: Strategy, inputs: torch.Tensor,
                     labels: torch.Tensor, cfg: TrainConfig, seed: int, num_classes: int,
                     reporter: Reporter | None = None, log_every: int = 50,
                     on_log: Callable[[int, float], None] | None = None,
                     execution: Any = None) -> TrainResult:
    """Train ``model`` in place on (N, 1, H, W) inputs and (N, H, W) int64 labels.

    ``on_log(step, mean_loss)`` is called every ``log_every`` steps (tuning uses it to report
    intermediate values and prune; it may raise to stop training). ``execution``
    (:class:`jmedbench.engine.devices.Execution`, None = CPU fp32): batches are drawn and
    augmented on the CPU with the run's generator (the same batches on every device), then
    moved to the device; the forward pass runs under its autocast, the loss in fp32;
    ``cfg.compile`` compiles the model for these steps only (prediction and saved weights use
    the model itself)."""
    reporter = reporter or Reporter()
    generator = torch.Generator().manual_seed(seed)
    weights = torch.from_numpy(class_weights(labels.numpy(), num_classes, cfg.class_weighting))
    if execution is not None:
        model = execution.place_model(model)
        weights = execution.to_device(weights)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = execution.grad_scaler() if execution is not None else None
    step_model = torch.compile(model) if cfg.compile else model
    cuda = execution is not None and execution.device_type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(execution.device)
    model.train()
    n = inputs.shape[0]
    result = TrainResult(steps=cfg.steps, seconds=0.0, images_seen=cfg.steps * cfg.batch_size,
                         class_weights=weights.tolist())
    log = LossLog(result, model, reporter, log_every, on_log)
    average = WeightAverage(model, cfg)
    for step in range(1, cfg.steps + 1):
        index = torch.randint(n, (cfg.batch_size,), generator=generator)
        x, y = strategy.augment(inputs[index], labels[index], generator)
        if cuda:  # page-locked, so that the copies below overlap with the GPU's work
            x, y = x.pin_memory(), y.pin_memory()
        if execution is not None:
            x, y = execution.place_batch(x), execution.to_device(y)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(cfg, step)
        with _autocast(execution):
            logits = step_model(x)
        loss = dice_ce_loss(logits.float(), y, weights)
        backward_and_step(loss, optimiser, scaler)
        average.after_step(step)
        log.add(step, loss.item())
    average.finish(inputs, NORM_STATISTICS_BATCH, execution)
    if cuda:
        result.peak_device_mib = round(torch.cuda.max_memory_allocated(execution.device) / 2**20, 1)
    return log.finish()


NORM_STATISTICS_BATCH = 16  # images per forward pass when batch-norm statistics are recomputed


class WeightAverage:
    """Stochastic weight averaging (Izmailov et al., UAI 2018): the equal-weight mean of the
    weights after each of the last ``cfg.average_last`` of the steps
    (``torch.optim.swa_utils.AveragedModel``), copied into the model when training ends, then
    the batch-norm statistics recomputed for those weights over one pass of the training images
    (``torch.optim.swa_utils.update_bn``: the averaged weights are not any step's, and neither
    are their activations). Averaging densely over the end of training finds flatter minima,
    which generalise better to domains not trained on (SWAD, Cha et al., NeurIPS 2021).
    Off (``average_last = 0``): the last step's weights."""

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig) -> None:
        self.model = model
        averaged_steps = max(1, round(cfg.average_last * cfg.steps))
        self.first = cfg.steps + 1 - averaged_steps if cfg.average_last > 0 else None
        self.averaged: torch.optim.swa_utils.AveragedModel | None = None

    def after_step(self, step: int) -> None:
        if self.first is None or step < self.first:
            return
        if self.averaged is None:
            self.averaged = torch.optim.swa_utils.AveragedModel(self.model, use_buffers=True)
        self.averaged.update_parameters(self.model)

    def finish(self, inputs: torch.Tensor, batch_size: int, execution: Any = None) -> None:
        if self.averaged is None:
            return
        self.model.load_state_dict(self.averaged.module.state_dict())
        self.averaged = None
        batches = (execution.place_batch(inputs[i:i + batch_size]) if execution is not None
                   else inputs[i:i + batch_size] for i in range(0, inputs.shape[0], batch_size))
        with torch.no_grad(), _autocast(execution):
            torch.optim.swa_utils.update_bn(batches, self.model)


FUSED_ADAM_DEVICES = ("cpu", "cuda")  # where torch >= 2.4 has the fused Adam kernel


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """The learning rate of training step ``step`` (1 to ``cfg.steps``): ``cfg.lr`` throughout
    (``constant``, the paper's), or half a cosine from ``cfg.lr`` at the first step towards 0
    after the last (``cosine``: SGDR without restarts, Loshchilov & Hutter, ICLR 2017)."""
    if cfg.lr_schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * (step - 1) / cfg.steps))
    return cfg.lr


def adam(params: list[torch.nn.Parameter], lr: float,
         weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam, in torch's fused kernel where the parameters' device has one (CPU, CUDA).

    The fused step is one kernel over every tensor; torch's default on the CPU is a loop of
    per-tensor operations. The fused step was 4x faster for the default UNet and for smp's
    24 M-parameter ResNet-34 U-Net (``benchmarks/test_speed_training.py``, group
    ``optimiser-step``). It is the same algorithm, rounded differently in the last bits, so a
    seed's run is not bit-identical to one trained before the engine used it
    (docs/devices.md). Elsewhere (MPS, and devices torch would only reject at the first step)
    it is torch's default."""
    fused = all(p.device.type in FUSED_ADAM_DEVICES and p.is_floating_point() for p in params)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)


def backward_and_step(loss: torch.Tensor, optimiser: torch.optim.Optimizer,
                      scaler: Any = None) -> None:
    """Gradients of ``loss`` and one optimiser step, through the fp16 gradient scaler when
    there is one (:meth:`jmedbench.engine.devices.Execution.grad_scaler`)."""
    optimiser.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimiser.step()
        return
    scaler.scale(loss).backward()
    scaler.step(optimiser)
    scaler.update()


def _autocast(execution: Any) -> contextlib.AbstractContextManager:
    return execution.autocast() if execution is not None else contextlib.nullcontext()


@torch.no_grad()
def predict(model: torch.nn.Module, inputs: torch.Tensor, batch_size: int = 16,
            execution: Any = None) -> np.ndarray:
    """Label maps (N, H, W) uint8 by argmax of the model's logits (no autograd graph), on the
    execution's device and in its precision (None: wherever the model is, in fp32)."""
    model.eval()
    out = []
    for start in range(0, inputs.shape[0], batch_size):
        x = inputs[start:start + batch_size]
        if execution is not None:
            x = execution.place_batch(x)
        with _autocast(execution):
            logits = model(x)
        out.append(logits.argmax(1).to(torch.uint8).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,) + tuple(inputs.shape[2:]), np.uint8)
