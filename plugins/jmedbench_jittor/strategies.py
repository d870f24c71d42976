"""Jittor forms of the strategies that change or pre-train the model (see
:meth:`jmedbench_jittor.backend.JittorBackend.adapt_strategy`). Each wraps the registered torch
strategy object, keeping its name, options, search space and description."""

from __future__ import annotations

from typing import Any

from jmedbench.strategy import Strategy, TrainContext


class Adapted(Strategy):
    """Delegates everything to the wrapped strategy except what a subclass overrides."""

    def __init__(self, inner: Strategy) -> None:
        self.inner = inner
        self.name = inner.name
        self.components = inner.components

    def pretrain(self, model: Any, ctx: TrainContext) -> None:
        return self.inner.pretrain(model, ctx)

    def prepare_model(self, model: Any, ctx: TrainContext) -> Any:
        return self.inner.prepare_model(model, ctx)

    def augment(self, images: Any, labels: Any, generator: Any) -> tuple[Any, Any]:
        return self.inner.augment(images, labels, generator)

    def search_space(self):
        return self.inner.search_space()

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "backend": "jittor"}


class JittorSpatialTransformer(Adapted):
    """``stn``: the Jittor spatial transformer in front of the Jittor model."""

    def prepare_model(self, model: Any, ctx: TrainContext) -> Any:
        from jmedbench.labels import IN_CHANNELS

        from jmedbench_jittor.stn import SpatialTransformerSegmenter
        return SpatialTransformerSegmenter(model, IN_CHANNELS)


class TwinPretraining(Adapted):
    """``ssl`` (or any pre-training): run the torch strategy's ``pretrain`` on the model's torch
    twin holding the Jittor model's weights, then copy the weights back."""

    def pretrain(self, model: Any, ctx: TrainContext) -> None:
        from jmedbench_jittor.parity import load_into_torch, load_torch_state

        rebuild = getattr(model, "_torch_twin", None)
        if rebuild is None:
            from jmedbench.errors import UserError
            raise UserError(f"strategy '{self.name}' with --backend jittor needs a zoo model "
                            f"with a torch twin; {type(model).__name__} has none")
        twin = rebuild()
        load_into_torch(twin, model)
        self.inner.pretrain(twin, ctx)
        load_torch_state(model, twin.state_dict())
        model.train()


ADAPTERS = {"stn": JittorSpatialTransformer, "ssl": TwinPretraining}
