"""``ssl``: self-supervised contrastive pre-training of the segmenter's encoder, MoCo v2 style,
before the usual supervised training.

What is trained: the model's own encoder (``model.encode(x)``, its deepest stage, e.g. the
UNet's 4th down-sampling: 512 channels at width 64 as in the paper), global-average-pooled and
passed through a projection head (MLP C -> C -> ``ssl_dim``). Two augmented views of each image
are embedded: the first by the encoder being trained (the query), the second by a momentum copy
of encoder and head (the key), updated as k <- m*k + (1-m)*q after every optimiser step. The
loss is InfoNCE with temperature 0.07 against a queue of earlier keys (the negatives). Only the
encoder weights survive pre-training; head, momentum copy and queue are thrown away.

References: He et al., Momentum Contrast for Unsupervised Visual Representation Learning, CVPR
2020; Chen et al., Improved Baselines with Momentum Contrastive Learning (MoCo v2),
arXiv:2003.04297; van den Oord et al., Representation Learning with Contrastive Predictive
Coding (InfoNCE), arXiv:1807.03748.

Choices that differ from the paper, and why:

- Learning rate: the paper pre-trains with Adam at lr 5e-6 (``ssl_lr = 5e-6`` reproduces it).
  That rate needs tens of thousands of iterations to move the encoder; our profiles give
  pre-training a few hundred at most on a CPU, and at 5e-6 the InfoNCE loss stays where it
  started (30 iterations on the quick phantom, three seeds: first-5 mean 3.53-3.60, last-5 mean
  3.59-3.60), so the pre-training would be a no-op that still costs time. The default, 1e-3,
  lowers it by 0.39-0.74 in the same 30 iterations (``python benchmarks/ssl_learning_rate.py``)
  and is the rate Adam is usually run at for from-scratch training.
- Batch 16 (8 in the quick and default profiles) and a queue capped below the number of
  pre-training images: MoCo uses 256 and 65536 on ImageNet. With a few hundred images a larger queue would hold stale keys of the very images
  in the batch as negatives (false negatives), so the queue is capped at
  ``n_images - ssl_batch_size``.
- Shuffled batch norm on one device: MoCo shuffles the key batch across GPUs so that batch-norm
  statistics cannot leak which key belongs to which query; here the key batch is permuted and
  normalised in ``ssl_bn_groups`` separate groups, which breaks the same leak on one CPU.

Data: every image pre-training may see without labels: the dataset's ``unlabelled`` split when it
has one, plus the training images (their labels are not used).
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
import time
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from jmedbench.engine.train import adam
from jmedbench.errors import UserError
from jmedbench.specs import SearchSpace
from jmedbench.strategy import Strategy, TrainContext

from jmedbench_strategies.aug import colour_augment, random_affine, warp_images

PAPER_LR = 5e-6
SEED_STREAM = 7_031  # keeps the SSL generator independent of the batch sampler's


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
             temperature: float) -> torch.Tensor:
    """InfoNCE of queries ``q`` (B, D) against their positives ``k`` (B, D) and the negatives
    ``queue`` (K, D), all L2-normalised: mean over the batch of
    -log(exp(q.k/t) / (exp(q.k/t) + sum_j exp(q.n_j/t)))."""
    positive = (q * k).sum(dim=1, keepdim=True)
    negative = q @ queue.t()
    logits = torch.cat([positive, negative], dim=1) / temperature
    target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target)


class ProjectionHead(nn.Sequential):
    """MoCo v2's MLP head: C -> C -> dim with a ReLU between."""

    def __init__(self, channels: int, dim: int) -> None:
        super().__init__(nn.Linear(channels, channels), nn.ReLU(inplace=True),
                         nn.Linear(channels, dim))


def encoder_channels(model: nn.Module, sample: torch.Tensor) -> int:
    """Channels of ``model.encode``, found by encoding one image (no state is changed)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        channels = int(model.encode(sample[:1]).shape[1])
    model.train(was_training)
    return channels


class MomentumContrast(nn.Module):
    """Query encoder (the model itself, trained), momentum key encoder, projection heads and
    the queue of negative keys."""

    def __init__(self, model: nn.Module, channels: int, dim: int = 128, queue_size: int = 256,
                 momentum: float = 0.99, temperature: float = 0.07, bn_groups: int = 2,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.encoder = model
        self.head = ProjectionHead(channels, dim)
        self.key_encoder = copy.deepcopy(model)
        self.key_head = copy.deepcopy(self.head)
        for p in self.key_parameters():
            p.requires_grad_(False)
        self.momentum, self.temperature, self.bn_groups = momentum, temperature, bn_groups
        queue = torch.randn(queue_size, dim, generator=generator)
        self.register_buffer("queue", F.normalize(queue, dim=1))
        self.pointer = 0

    def query_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters()) + list(self.head.parameters())

    def key_parameters(self) -> list[nn.Parameter]:
        return list(self.key_encoder.parameters()) + list(self.key_head.parameters())

    @staticmethod
    def embed(encoder: nn.Module, head: nn.Module, x: torch.Tensor) -> torch.Tensor:
        features = encoder.encode(x).mean(dim=(2, 3))  # global average pooling
        return F.normalize(head(features), dim=1)

    def queries(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.encoder, self.head, x)

    @torch.no_grad()
    def keys(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Keys of ``x`` by the momentum encoder, batch-norm statistics taken over shuffled
        groups (see the module docstring)."""
        n = x.shape[0]
        order = torch.randperm(n, generator=generator)
        groups = max(1, min(self.bn_groups, n // 2))
        shuffled = torch.cat([self.embed(self.key_encoder, self.key_head, part)
                              for part in x[order].chunk(groups)])
        keys = torch.empty_like(shuffled)
        keys[order] = shuffled
        return keys

    @torch.no_grad()
    def fill_queue(self, views: torch.Tensor, generator: torch.Generator | None = None,
                   batch_size: int = 64) -> None:
        """Start the queue with keys of real images instead of random vectors: random unit
        vectors are negatives too easy to teach anything, and while they are replaced the loss
        rises for reasons unrelated to learning."""
        for start in range(0, views.shape[0], batch_size):
            self.enqueue(self.keys(views[start:start + batch_size], generator))

    @torch.no_grad()
    def momentum_update(self) -> None:
        """k <- m * k + (1 - m) * q, parameter by parameter."""
        m = self.momentum
        for key, query in zip(self.key_parameters(), self.query_parameters()):
            key.mul_(m).add_(query.detach(), alpha=1 - m)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        size = self.queue.shape[0]
        keys = keys[-size:]  # more keys than places: the newest win
        idx = (self.pointer + torch.arange(keys.shape[0])) % size
        self.queue[idx] = keys.to(self.queue.dtype)  # bf16 keys under autocast
        self.pointer = int((self.pointer + keys.shape[0]) % size)

    def step(self, view_q: torch.Tensor, view_k: torch.Tensor, optimiser: torch.optim.Optimizer,
             generator: torch.Generator | None = None) -> float:
        """One MoCo iteration: loss, optimiser step on the query side, momentum update of the
        key side, then the new keys join the queue. Returns the loss."""
        self.encoder.train()
        self.key_encoder.train()
        q = self.queries(view_q)
        k = self.keys(view_k, generator)
        loss = info_nce(q, k, self.queue.clone(), self.temperature)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        self.momentum_update()
        self.enqueue(k)
        return float(loss.item())


def make_view(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One augmented view: colour jitter (as ``aug``) and a mild random affine (no label is
    involved, so moving pixels is harmless). Mild because on vertebral CT the instances differ
    mostly by the vertebra's position and size: views moved more than instances differ would
    leave nothing to tell instances apart by."""
    x = colour_augment(x, generator, strength=1.0, probability=0.8)
    theta = random_affine(x.shape[0], generator, rotate_deg=5.0, scale=0.05, translate=0.03,
                          flip=False)
    return warp_images(x, theta)


def compatible_models() -> list[str]:
    from jmedbench.registry import get_registry
    return sorted({s.name for s in get_registry().specs("models") if s.has_encoder})


def require_encoder(model: Any, ctx: TrainContext, strategy: str = "ssl") -> None:
    spec = ctx.model_spec
    has = callable(getattr(model, "encode", None)) and (spec is None or spec.has_encoder)
    if not has:
        name = getattr(spec, "name", type(model).__name__)
        models = compatible_models()
        listed = ", ".join(models) if models else "none installed"
        raise UserError(f"strategy '{strategy}' needs a model that exposes its encoder "
                        f"(ModelSpec.has_encoder and model.encode); model '{name}' does not. "
                        f"Compatible models: {listed}")


def pretraining_images(ctx: TrainContext) -> np.ndarray:
    parts = [a for a in (ctx.unlabelled_images, ctx.train_images) if a is not None and len(a)]
    if not parts:
        raise UserError("strategy 'ssl': the dataset has no training or unlabelled images")
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


class ContrastivePretraining(Strategy):
    """``ssl``: MoCo v2 pre-training of the encoder, then supervised training as usual."""

    name = "ssl"

    def __init__(self, ssl_iterations: int = 100, ssl_batch_size: int = 16,
                 ssl_lr: float = 1e-3, ssl_temperature: float = 0.07,
                 ssl_momentum: float = 0.99, ssl_queue: int = 1024, ssl_dim: int = 128,
                 ssl_bn_groups: int = 2) -> None:
        problems = []
        if ssl_iterations < 0:
            problems.append(f"ssl_iterations must be >= 0 (got {ssl_iterations})")
        if ssl_batch_size < 2:
            problems.append(f"ssl_batch_size must be >= 2 (got {ssl_batch_size})")
        if not 0 <= ssl_momentum < 1:
            problems.append(f"ssl_momentum must be in [0, 1) (got {ssl_momentum})")
        if ssl_temperature <= 0 or ssl_lr <= 0 or ssl_queue < 1 or ssl_dim < 1:
            problems.append("ssl_temperature, ssl_lr, ssl_queue and ssl_dim must be positive")
        if problems:
            raise UserError("[strategy] " + "; ".join(problems))
        self.iterations, self.batch_size, self.lr = int(ssl_iterations), int(ssl_batch_size), ssl_lr
        self.temperature, self.momentum = float(ssl_temperature), float(ssl_momentum)
        self.queue, self.dim, self.bn_groups = int(ssl_queue), int(ssl_dim), int(ssl_bn_groups)
        self.losses: list[float] = []

    def pretrain(self, model: Any, ctx: TrainContext) -> None:
        require_encoder(model, ctx)
        ctx.budget["ssl_iterations"] = 0
        if self.iterations == 0:
            return
        images = pretraining_images(ctx)
        if ctx.to_input is not None:
            inputs = ctx.to_input(images)
        else:
            from jmedbench.engine.preprocess import hu_to_input
            inputs = torch.from_numpy(hu_to_input(images))
        n = inputs.shape[0]
        batch = min(self.batch_size, n)
        queue = max(1, min(self.queue, n - batch))
        generator = torch.Generator().manual_seed(ctx.seed * 100_003 + SEED_STREAM)
        place = ctx.execution.place_batch if ctx.execution is not None else (lambda x: x)
        precision = ctx.execution.autocast if ctx.execution is not None else nullcontext
        moco = MomentumContrast(model, encoder_channels(model, place(inputs[:2])), self.dim,
                                queue, self.momentum, self.temperature, self.bn_groups,
                                generator)
        if ctx.execution is not None:  # heads and queue join the model's device
            moco = ctx.execution.place_model(moco)
        start = torch.randperm(n, generator=generator)[:queue]
        with precision():
            moco.fill_queue(place(make_view(inputs[start], generator)), generator)
        optimiser = adam([p for p in moco.query_parameters() if p.requires_grad], lr=self.lr)
        task = "ssl pretrain"
        report = ctx.progress or (lambda *_: None)
        report(task, 0, self.iterations)
        order = torch.randperm(n, generator=generator)
        cursor, t0 = 0, time.perf_counter()
        for iteration in range(1, self.iterations + 1):
            if cursor + batch > n:  # a new epoch: every image once before any repeats
                order, cursor = torch.randperm(n, generator=generator), 0
            x = inputs[order[cursor:cursor + batch]]
            cursor += batch
            view_q, view_k = make_view(x, generator), make_view(x, generator)
            with precision():
                self.losses.append(moco.step(place(view_q), place(view_k), optimiser,
                                             generator))
            report(task, iteration, self.iterations)
        head = min(5, len(self.losses))
        ctx.budget.update({
            "ssl_iterations": self.iterations,
            "ssl_images": self.iterations * batch,  # each seen as two views
            "ssl_seconds": round(time.perf_counter() - t0, 3),
            "ssl_queue": queue,
            "ssl_loss_first": float(np.mean(self.losses[:head])),
            "ssl_loss_last": float(np.mean(self.losses[-head:])),
        })
        model.train()

    def search_space(self) -> SearchSpace:
        return {"ssl_lr": ("float", 1e-5, 3e-3, True),
                "ssl_temperature": ("float", 0.05, 0.5, True)}

    def describe(self) -> dict[str, Any]:
        curve = self.losses
        if len(curve) > 50:  # keep the stored curve small: 50 evenly spaced points
            curve = [curve[int(i)] for i in np.linspace(0, len(curve) - 1, 50)]
        return {**super().describe(),
                "options": {"ssl_iterations": self.iterations, "ssl_batch_size": self.batch_size,
                            "ssl_lr": self.lr, "ssl_temperature": self.temperature,
                            "ssl_momentum": self.momentum, "ssl_queue": self.queue,
                            "ssl_dim": self.dim, "ssl_bn_groups": self.bn_groups,
                            "paper_lr": PAPER_LR},
                "ssl_loss_curve": [round(v, 4) for v in curve]}
