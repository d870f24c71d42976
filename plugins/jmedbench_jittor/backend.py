"""The Jittor backend: the engine's training recipe (Adam, weighted cross-entropy + soft Dice,
batches drawn by the run's seeded torch generator) with a Jittor model.

As for every backend (see :mod:`jmedbench.engine.backends`), batches are drawn and augmented on the
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


import numpy as np

from jmedbench.engine.backends import Backend
from jmedbench.engine.progress import Reporter
from jmedbench.engine.train import LossLog, TrainResult, class_weights, learning_rate
from jmedbench.errors import UserError
from jmedbench.strategy import ComposedStrategy, Strategy

from jmedbench_jittor.loss import dice_ce_loss, parameter_count, trainable
from jmedbench_jittor.runtime import import_jittor


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
              log_every=50, on_log=None) -> TrainResult:
        import torch

        from jmedbench_jittor.kernels import Adam

        jt = self.jt
        reporter = reporter or Reporter()
        generator = torch.Generator().manual_seed(seed)
        weights_np = class_weights(labels.numpy(), num_classes, cfg.class_weighting)
        weights = jt.array(weights_np)
        model.train()
        optimiser = Adam(trainable(model), lr=cfg.lr, weight_decay=cfg.weight_decay)
        n = inputs.shape[0]
        result = TrainResult(steps=cfg.steps, seconds=0.0,
                             images_seen=cfg.steps * cfg.batch_size,
                             class_weights=weights_np.tolist())
        log = LossLog(result, model, reporter, log_every, on_log)
        for step in range(1, cfg.steps + 1):
            index = torch.randint(n, (cfg.batch_size,), generator=generator)
            x, y = strategy.augment(inputs[index], labels[index], generator)
            optimiser.lr = learning_rate(cfg, step)  # read at each step (kernels.Adam)
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
        return parameter_count(model)
