"""What a training strategy is to the engine, and how strategies compose (``ssl+stn+aug``).

The engine trains every model the same way (supervised Dice + cross-entropy, see
:mod:`jmedbench.engine.train`); a strategy changes that flow at three well-defined points:

1. ``pretrain(model, ctx)``: before supervised training (self-supervised pre-training).
2. ``prepare_model(model, ctx)``: wraps or changes the model (a spatial transformer in front).
3. ``augment(images, labels, generator)``: per training batch (colour-space augmentation).

A composed strategy runs every part's pretrain in order, then every prepare_model, and chains
the augmentations, so each component means the same thing alone and in a combination.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from jmedbench.specs import SearchSpace


@dataclass
class TrainContext:
    """What a strategy may read: the training data (numpy, HU), options and a budget ledger."""

    train_images: np.ndarray  # (N, H, W) float32 HU
    train_labels: np.ndarray  # (N, H, W) int64
    unlabelled_images: np.ndarray | None
    seed: int
    options: dict[str, Any] = field(default_factory=dict)  # the run's [strategy] table
    model_spec: Any = None
    progress: Callable[[str, int, int], None] | None = None  # (task, done, total)
    budget: dict[str, float] = field(default_factory=dict)  # counted work, stored with the run
    to_input: Callable[[np.ndarray], Any] | None = None  # HU numpy -> model input tensor
    # where the model runs (jmedbench.engine.devices.Execution: place_batch, autocast);
    # None: the CPU in fp32. Pre-training moves its batches with it.
    execution: Any = None


class Strategy:
    """The baseline: no pre-training, the model as it is, no augmentation."""

    name = "baseline"
    components: tuple[str, ...] = ()

    def pretrain(self, model: Any, ctx: TrainContext) -> None:
        return None

    def prepare_model(self, model: Any, ctx: TrainContext) -> Any:
        return model

    def augment(self, images: Any, labels: Any, generator: Any) -> tuple[Any, Any]:
        return images, labels

    def search_space(self) -> SearchSpace:
        return {}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "components": list(self.components)}


class ComposedStrategy(Strategy):
    """Several strategies applied together, in the order given."""

    def __init__(self, parts: list[Strategy], name: str | None = None) -> None:
        self.parts = parts
        self.name = name or "+".join(p.name for p in parts)
        self.components = tuple(c for p in parts for c in (p.components or (p.name,)))

    def pretrain(self, model: Any, ctx: TrainContext) -> None:
        for part in self.parts:
            part.pretrain(model, ctx)

    def prepare_model(self, model: Any, ctx: TrainContext) -> Any:
        for part in self.parts:
            model = part.prepare_model(model, ctx)
        return model

    def augment(self, images: Any, labels: Any, generator: Any) -> tuple[Any, Any]:
        for part in self.parts:
            images, labels = part.augment(images, labels, generator)
        return images, labels

    def search_space(self) -> SearchSpace:
        space: SearchSpace = {}
        for part in self.parts:
            space.update(part.search_space())
        return space

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "components": list(self.components),
                "parts": [p.describe() for p in self.parts]}
