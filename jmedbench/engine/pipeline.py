"""The training half of every command: dataset, model, strategy, pre-training and supervised
training through the run's backend, exactly once in the code base. ``run`` (and so ``bench``
and ``ablation``), ``tune``, ``cohort --model`` and the conformance kit's learning check all
call :func:`train_model`; :func:`predict_subjects` is the matching inference."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch

from jmedbench.config import RunConfig
from jmedbench.data import Dataset, stack_slices
from jmedbench.engine.backends import Backend, get_backend, to_input
from jmedbench.engine.build import build_dataset, build_model, build_strategy
from jmedbench.engine.determinism import seed_everything
from jmedbench.engine.devices import Execution, resolve_execution
from jmedbench.engine.progress import Reporter
from jmedbench.engine.train import TrainResult
from jmedbench.errors import UserError
from jmedbench.labels import NUM_CLASSES
from jmedbench.registry import Registry
from jmedbench.strategy import Strategy, TrainContext
from jmedbench.weights import load_weights

LOG_EVERY = 50  # steps per entry of TrainResult.losses unless a caller asks for another


class Timer:
    """Wall time per named stage of a run, stored with it."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - t0, 4)


@dataclass
class TrainedModel:
    """What training leaves behind: the model ready to predict, and how it got there."""
    model: Any
    spec: Any
    dataset: Dataset
    strategy: Strategy
    backend: Backend
    context: TrainContext
    result: TrainResult
    execution: Execution


def run_execution(registry: Registry, cfg: RunConfig) -> Execution:
    """The device, precision and layout ``cfg`` asks for, within what its backend can run."""
    backend = get_backend(registry, cfg.backend)
    return resolve_execution(cfg.device, cfg.precision, cfg.train.channels_last,
                             backend=backend.name, backend_devices=backend.devices,
                             backend_precisions=backend.precisions)


def run_backend(registry: Registry, cfg: RunConfig) -> Backend:
    """``cfg``'s backend bound to its execution: what trains and predicts for a run."""
    backend = get_backend(registry, cfg.backend)
    if cfg.train.average_last and not backend.averages_weights:
        raise UserError(f"train.average_last {cfg.train.average_last}: the {backend.name} "
                        f"backend does not average weights (set it to 0, or use --backend torch)")
    return backend.with_execution(run_execution(registry, cfg))


def train_model(registry: Registry, cfg: RunConfig, reporter: Reporter | None = None,
                timer: Timer | None = None, *, dataset: Dataset | None = None,
                strategy: Strategy | None = None, log_every: int = LOG_EVERY,
                on_log: Callable[[int, float, Any], None] | None = None) -> TrainedModel:
    """Build the dataset (unless given: tuning reuses one for every trial), model and strategy
    of ``cfg`` (unless given: the conformance kit trains a model with none), load
    ``cfg.weights``, pre-train (with the dataset's ``unlabelled`` split) and train in
    ``cfg.backend``. ``on_log(step, mean_loss, model)`` is called every ``log_every`` steps
    with the model being trained (tuning scores it there and prunes by raising; the kit's
    learning check reads every step's loss with ``log_every=1``)."""
    reporter = reporter or Reporter()
    timer = timer or Timer()
    seed_everything(cfg.seed)
    backend = run_backend(registry, cfg)
    execution = backend.execution
    backend.seed(cfg.seed)
    with timer.stage("data"):
        dataset = dataset or build_dataset(registry, cfg)
        train_images, train_labels = stack_slices(dataset.split("train"))
        unlabelled = (stack_slices(dataset.split("unlabelled"))[0]
                      if dataset.has_split("unlabelled") else None)
    with timer.stage("build"):
        model, spec = build_model(registry, cfg)
        if cfg.weights:
            load_weights(model, cfg.weights, model_name=cfg.model)
        strategy = backend.adapt_strategy(
            strategy or build_strategy(registry, cfg.strategy, cfg.strategy_options))
    inputs = to_input(train_images)
    labels = torch.from_numpy(train_labels)
    ctx = TrainContext(train_images=train_images, train_labels=train_labels,
                       unlabelled_images=unlabelled, seed=cfg.seed,
                       options=cfg.strategy_options, model_spec=spec,
                       progress=reporter.callback,
                       to_input=to_input, execution=execution)
    model = backend.place_model(model)
    with timer.stage("pretrain"):
        strategy.pretrain(model, ctx)
    model = strategy.prepare_model(model, ctx)
    model = backend.place_model(model)  # a strategy may wrap it (stn) in new CPU modules
    step_callback = None if on_log is None else lambda step, loss: on_log(step, loss, model)
    with timer.stage("train"):
        trained = backend.train(model, strategy, inputs, labels, cfg.train, cfg.seed,
                                NUM_CLASSES, reporter, log_every=log_every,
                                on_log=step_callback)
    return TrainedModel(model, spec, dataset, strategy, backend, ctx, trained, execution)


def predict_subjects(model: Any, images: list[np.ndarray], batch_size: int,
                     backend: Backend) -> list[np.ndarray]:
    """Label maps of HU volumes (S, H, W), one per volume, predicted in ``backend``."""
    return [backend.predict(model, to_input(img), batch_size) for img in images]
