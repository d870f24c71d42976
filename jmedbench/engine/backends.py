"""Backends: the framework a model is built, trained and run in (PyTorch by default, Jittor
through the ``jmedbench_jittor`` plugin).

The engine talks to a framework only through a :class:`Backend`; everything around it stays
shared and numpy (datasets, metrics, density, robustness scoring). What a backend does:

- ``seed(seed)``: seed the framework's own random state (weight initialisation, dropout).
- ``adapt_strategy(strategy)``: return the strategy in a form this backend can train with, or
  raise :class:`~jmedbench.errors.UserError` naming the part it cannot run.
- ``train(...)``: supervised training in place, the recipe of :mod:`jmedbench.engine.train`.
- ``predict(model, inputs, batch_size)``: label maps (N, H, W) uint8.
- ``num_parameters(model)``.

Where and in which number format: a backend carries an ``execution``
(:class:`jmedbench.engine.devices.Execution`, resolved from ``--device``/``--precision``;
None means the CPU in fp32). ``devices``/``precisions`` say what a backend can run (None:
whatever torch can); :func:`jmedbench.engine.pipeline.run_backend` binds the resolved execution
with :meth:`Backend.with_execution`, and the engine trains and predicts through that bound copy.

The data side is the same for every backend: model inputs are ``torch`` tensors made by
:func:`to_input` from HU images, and batches are drawn and augmented (``Strategy.augment``) in
torch with the run's ``torch.Generator``. A backend converts a finished batch to its own arrays.
So for the same seed every backend sees the same batches, and an augmentation strategy written
once works with all of them.

A backend is announced by a plugin's ``jmedbench_backends`` hook as a
:class:`~jmedbench.specs.BackendSpec`; ``torch`` is registered by this module itself (entry
point ``torch``) and is always available.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np

from jmedbench.errors import UserError
from jmedbench.hookspecs import hookimpl
from jmedbench.specs import BackendSpec
from jmedbench.strategy import Strategy

DEFAULT = "torch"


def to_input(images: np.ndarray) -> Any:
    """(N, H, W) HU -> (N, 1, H, W) float32 torch tensor: the data side of every backend."""
    import torch

    from jmedbench.engine.preprocess import hu_to_input
    return torch.from_numpy(hu_to_input(images))


class Backend:
    """The interface the engine uses; :class:`TorchBackend` is the reference implementation."""

    name = "?"
    devices: tuple[str, ...] | None = ("cpu",)   # device types it runs on; None: any of torch's
    precisions: tuple[str, ...] | None = ("fp32",)
    averages_weights = False                      # honours [train] average_last
    execution: Any = None                         # an Execution, or None: the CPU in fp32

    def with_execution(self, execution: Any) -> "Backend":
        """This backend bound to one device and precision (a copy; the framework is shared)."""
        bound = copy.copy(self)
        bound.execution = execution
        return bound

    def place_model(self, model: Any) -> Any:
        """The model on this backend's device in its memory layout (the framework's default
        place unless a backend can run elsewhere)."""
        return model

    def seed(self, seed: int) -> None:
        raise NotImplementedError

    def adapt_strategy(self, strategy: Strategy) -> Strategy:
        return strategy

    def train(self, model: Any, strategy: Strategy, inputs: Any, labels: Any, cfg: Any,
              seed: int, num_classes: int, reporter: Any = None, log_every: int = 50,
              on_log: Callable[[int, float], None] | None = None) -> Any:
        """Train ``model`` in place on (N, 1, H, W) torch inputs and (N, H, W) int64 torch
        labels, calling ``on_log(step, mean_loss)`` every ``log_every`` steps (see
        :class:`jmedbench.engine.train.LossLog`); returns a
        :class:`jmedbench.engine.train.TrainResult`."""
        raise NotImplementedError

    def predict(self, model: Any, inputs: Any, batch_size: int = 16) -> np.ndarray:
        """Label maps (N, H, W) uint8 of (N, 1, H, W) torch inputs."""
        raise NotImplementedError

    def num_parameters(self, model: Any) -> int:
        raise NotImplementedError

    def profile_model(self, registry: Any, name: str, **options: Any) -> dict[str, Any]:
        """A ``jmedbench profile`` row (see :func:`jmedbench.engine.profiling.profile_model`, whose
        keyword arguments it takes) measured in this backend; a backend other than torch adds
        the torch twin's times and the ratios, measured in the same run."""
        raise UserError(f"--backend {self.name}: this backend cannot be profiled")


class TorchBackend(Backend):
    """PyTorch: the engine's own training loop (:mod:`jmedbench.engine.train`)."""

    name = "torch"
    devices = None      # cpu, cuda, mps
    precisions = None   # fp32, bf16, fp16
    averages_weights = True

    def place_model(self, model):
        return self.execution.place_model(model) if self.execution is not None else model

    def seed(self, seed: int) -> None:
        import torch
        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)

    def train(self, model, strategy, inputs, labels, cfg, seed, num_classes, reporter=None,
              log_every=50, on_log=None):
        from jmedbench.engine.train import train_supervised
        return train_supervised(model, strategy, inputs, labels, cfg, seed, num_classes,
                                reporter, log_every=log_every, on_log=on_log,
                                execution=self.execution)

    def predict(self, model, inputs, batch_size=16):
        from jmedbench.engine.train import predict
        return predict(model, inputs, batch_size, execution=self.execution)

    def num_parameters(self, model) -> int:
        return sum(p.numel() for p in model.parameters())


TORCH = BackendSpec("torch", TorchBackend, "PyTorch (CPU or CUDA); the reference backend",
                    install="pip install jmedbench")


@hookimpl
def jmedbench_backends():
    return [TORCH]


_INSTANCES: dict[str, Backend] = {}


def get_backend(registry: Any, name: str | None) -> Backend:
    """The backend called ``name`` (one instance per process). A backend whose framework is not
    installed raises a UserError from its factory that says what to install."""
    name = name or DEFAULT
    if name not in _INSTANCES:
        # torch is the core's own: available even to a registry built without entry points
        spec = TORCH if name == DEFAULT else registry.get("backends", name)
        _INSTANCES[name] = spec.factory()
    return _INSTANCES[name]
