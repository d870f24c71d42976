"""The Jittor backend: the engine's training recipe (Adam, weighted cross-entropy + soft Dice,
batches drawn by the run's seeded torch generator) with a Jittor model.

As for every backend (see :mod:`jmedbench.backends`), batches are drawn and augmented on the
shared torch data side, then handed to Jittor as arrays: the same seed gives the same batches
in both frameworks, and augmentation strategies (``aug``, ``geo``) work unchanged.

Strategies that change the model or pre-train it need a Jittor form (:meth:`adapt_strategy`):

- ``stn``: a Jittor spatial transformer (:mod:`jmedbench_jittor.stn`) wraps the model.
- ``ssl``: MoCo pre-training runs on the model's torch twin (the zoo's model, built with the
  same arguments), starting from the Jittor model's weights, and the pre-trained weights are
  copied back; parity of the two layouts makes this exact. The supervised training that
  follows is Jittor's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jmedbench.backends import Backend
from jmedbench.engine.progress import Reporter
from jmedbench.engine.train import LossLog, TrainResult, class_weights
from jmedbench.errors import UserError
from jmedbench.strategy import ComposedStrategy, Strategy

from jmedbench_jittor.runtime import import_jittor


def dice_ce_loss(logits, target, weights, smooth: float = 1.0):
    """Jittor version of :func:`jmedbench.engine.train.dice_ce_loss` (same formula): weighted
    cross-entropy (torch's weighted mean: sum w_y * nll / sum w_y) + mean soft Dice loss over
    the foreground classes, pooled over the batch."""
    jt = import_jittor()
    from jittor import nn

    num_classes = logits.shape[1]
    onehot = (target.unsqueeze(1) == jt.arange(num_classes).reshape(1, -1, 1, 1)).float32()
    log_probs = nn.log_softmax(logits, dim=1)
    pixel_weights = (onehot * weights.reshape(1, -1, 1, 1)).sum(1)
    nll = -(log_probs * onehot).sum(1)
    ce = (pixel_weights * nll).sum() / pixel_weights.sum()
    probs = log_probs.exp()[:, 1:]
    fg = onehot[:, 1:]
    inter = (probs * fg).sum(dims=(0, 2, 3))
    denom = probs.sum(dims=(0, 2, 3)) + fg.sum(dims=(0, 2, 3))
    dice = (2 * inter + smooth) / (denom + smooth)
    return ce + (1 - dice).mean()


def trainable(model: Any) -> list:
    """Parameters that learn: Jittor lists BatchNorm running statistics among a module's
    variables, but they are stop-grad."""
    return [p for p in model.parameters() if not p.is_stop_grad()]


class JittorBackend(Backend):
    name = "jittor"

    def __init__(self) -> None:
        self.jt = import_jittor()

    def seed(self, seed: int) -> None:
        self.jt.set_global_seed(seed)  # dropout masks; weights come from the torch twin

    # -- strategies ---------------------------------------------------------------------------
    def adapt_strategy(self, strategy: Strategy) -> Strategy:
        if isinstance(strategy, ComposedStrategy):
            parts = [self._adapt_part(p) for p in strategy.parts]
            adapted = ComposedStrategy(parts, name=strategy.name)
            adapted.components = strategy.components
            return adapted
        return self._adapt_part(strategy)

    def _adapt_part(self, part: Strategy) -> Strategy:
        from jmedbench_jittor.strategies import ADAPTERS

        if part.name in ADAPTERS:
            return ADAPTERS[part.name](part)
        cls = type(part)
        if cls.pretrain is Strategy.pretrain and cls.prepare_model is Strategy.prepare_model:
            return part  # augmentation only: runs on the shared torch data side
        raise UserError(f"strategy '{part.name}' changes or pre-trains the model in PyTorch and "
                        f"has no Jittor form; with --backend jittor use parts among: baseline, "
                        f"augmentation-only strategies, {', '.join(sorted(ADAPTERS))}")

    # -- training and inference ---------------------------------------------------------------
    def train(self, model, strategy, inputs, labels, cfg, seed, num_classes, reporter=None,
              on_log=None) -> TrainResult:
        import torch

        from jmedbench_jittor.kernels import Adam

        jt = self.jt
        reporter = reporter or Reporter()
        generator = torch.Generator().manual_seed(seed)
        weights_np = class_weights(labels.numpy(), num_classes)
        weights = jt.array(weights_np)
        model.train()
        optimiser = Adam(trainable(model), lr=cfg.lr, weight_decay=cfg.weight_decay)
        n = inputs.shape[0]
        result = TrainResult(steps=cfg.steps, seconds=0.0,
                             images_seen=cfg.steps * cfg.batch_size,
                             class_weights=weights_np.tolist())
        log = LossLog(result, model, reporter, on_log=on_log)
        for step in range(1, cfg.steps + 1):
            index = torch.randint(n, (cfg.batch_size,), generator=generator)
            x, y = strategy.augment(inputs[index], labels[index], generator)
            loss = dice_ce_loss(model(jt.array(x.numpy())), jt.array(y.numpy()), weights)
            optimiser.step(loss)
            log.add(step, loss.item())
        return log.finish()

    def predict(self, model, inputs, batch_size=16) -> np.ndarray:
        jt = self.jt
        model.eval()
        out = []
        with jt.no_grad():
            for start in range(0, inputs.shape[0], batch_size):
                logits = model(jt.array(inputs[start:start + batch_size].numpy()))
                out.append(jt.argmax(logits, 1)[0].numpy().astype(np.uint8))
        if not out:
            return np.zeros((0,) + tuple(inputs.shape[2:]), np.uint8)
        return np.concatenate(out)

    def profile_model(self, registry, name, **options):
        from jmedbench_jittor.speed import profile_model
        options.pop("memory", None)  # Jittor reports no allocation events
        return profile_model(registry, name, **options)

    def num_parameters(self, model) -> int:
        """Parameters as torch counts them (BatchNorm running statistics excluded)."""
        return int(sum(int(np.prod(v.shape)) for k, v in model.state_dict().items()
                       if not k.endswith(("running_mean", "running_var"))))
