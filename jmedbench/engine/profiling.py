"""What a model costs on this machine: parameters, GFLOPs, forward latency, training step time,
images per second and training memory. Used by ``jmedbench profile`` and
``benchmarks/profile_table.py``; a profile can be stored as a ``kind='profile'`` run so that
leaderboards can show it next to the scores.

What each number is (and is not):

- ``params``: trainable parameters; ``params_total`` includes frozen ones.
- ``gflops``: floating-point operations of one forward pass at batch 1 and the given size, in
  units of 1e9, as :class:`torch.utils.flop_counter.FlopCounterMode` counts them:
  convolutions, matrix products and attention, a multiply-add counted as 2; element-wise ops,
  normalisation and interpolation are not counted. (Papers that quote "FLOPs" are often
  quoting multiply-adds, half of this.)
- ``forward_ms``: median wall time of an eval-mode forward at batch 1 (no autograd), after
  warm-up.
- ``train_step_ms``: median wall time of one training step at ``batch``: forward, Dice + CE
  (:func:`jmedbench.engine.train.dice_ce_loss`), backward, Adam step; ``train_images_per_s`` is
  ``batch`` divided by it.
- ``train_peak_mib``: the peak of tensor memory torch allocates during one training step
  (activations kept for backward, gradients, temporaries), from the allocation events of
  :mod:`torch.profiler` with ``profile_memory=True``. It excludes memory that exists before
  the step (weights, Adam state: see ``weights_mib``) and the allocator's and libraries' own
  overhead, so it is what the model needs, not the process's resident size. None when this
  torch build does not report allocation events. (``tracemalloc`` does not see torch's
  allocations, and ``ru_maxrss`` is a process-wide high-water mark that mixes in imports.)
- ``device``, ``precision``, ``channels_last``, ``accelerator``: where and how it ran
  (``--device``/``--precision``, :mod:`jmedbench.engine.devices`); on CUDA every timed call
  ends with a synchronisation and ``train_peak_mib`` is ``torch.cuda.max_memory_allocated``
  during the step minus what was allocated before it.
- timings depend on the machine, the thread count (``threads``, recorded) and the load of
  other processes; compare numbers measured in the same session only.
"""

from __future__ import annotations

import os
import statistics
import time
from contextlib import contextmanager
from typing import Any, Iterator

import torch

from jmedbench import provenance
from jmedbench.engine.backends import get_backend
from jmedbench.engine.build import instantiate_model
from jmedbench.engine.devices import Execution, resolve_execution
from jmedbench.engine.train import adam, backward_and_step, dice_ce_loss
from jmedbench.errors import UserError
from jmedbench.labels import IN_CHANNELS, NUM_CLASSES
from jmedbench.registry import Registry, suggest
from jmedbench.specs import ModelSpec
from jmedbench.weights import load_weights

DEFAULT_SIZE = 256
DEFAULT_BATCH = 4
PROFILE_KEYS = ("model", "family", "backend", "size", "batch", "params", "params_total",
                "gflops", "forward_ms", "train_step_ms", "train_images_per_s",
                "train_peak_mib", "weights_mib", "threads", "weights_file", "device", "precision",
                "channels_last", "accelerator")


def check_size(spec: ModelSpec, size: int) -> None:
    problem = spec.side_problem(size)
    if problem:
        raise UserError(f"--size {size}: model '{spec.name}' takes sides that are "
                        f"{spec.sizes_text()}; {size} {problem} "
                        f"(try --size {spec.fitting_side(size)})")


def select_models(registry: Registry, pattern: str, backend: str = "torch") -> list[ModelSpec]:
    """Specs for a name or a shell-style wildcard (``unet*``); one clear error if none."""
    if any(c in pattern for c in "*?["):
        specs = [s for s in registry.specs("models", pattern) if s.backend == backend]
        if not specs:
            names = registry.names("models")
            hint = suggest(pattern.replace("*", "").replace("?", ""), names)
            extra = f" (did you mean {' or '.join(hint)}?)" if hint else ""
            raise UserError(f"--model '{pattern}': no {backend} model matches{extra}")
        return specs
    return [registry.model(pattern, backend)]  # UnknownNameError says "did you mean"


def median_ms(func, repeats: int, warmup: int, sync=None) -> float:
    """Median wall time of ``func()`` in milliseconds over ``repeats`` calls after ``warmup``
    (``sync()`` after each call: a GPU's queued work counts)."""
    sync = sync or (lambda: None)
    for _ in range(warmup):
        func()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """The profiler's C++ side logs start/stop lines to fd 2; keep them off the user's screen."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def peak_step_memory(step) -> int | None:
    """Peak bytes of tensor memory allocated during ``step()`` beyond what existed before it."""
    from torch.profiler import ProfilerActivity, profile

    with _native_stderr_silenced():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step()
    try:
        # Raw allocation (+bytes) and free (-bytes) records in time order. The FunctionEvent
        # view folds them into operators, losing the order the peak depends on.
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
        events.sort(key=lambda e: e.start_ns())
    except (AttributeError, TypeError):
        return None
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def cuda_step_memory(step, device: str) -> int:
    """Peak bytes allocated on a CUDA device during ``step()`` beyond what existed before."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def profile_model(registry: Registry, name: str, *, size: int = DEFAULT_SIZE,
                  batch: int = DEFAULT_BATCH, backend: str = "torch",
                  weights: str | None = None, options: dict[str, Any] | None = None,
                  repeats: int = 5, warmup: int = 2, memory: bool = True,
                  seed: int = 0, execution: Execution | None = None) -> dict[str, Any]:
    """Profile one registered model; returns a flat dict with the keys of PROFILE_KEYS.
    ``execution``: device, precision and layout (default: the CPU in fp32)."""
    execution = execution or resolve_execution("cpu", "fp32")
    if backend != "torch":  # measured by the backend, next to its torch twin in the same run
        if (execution.device, execution.precision) != ("cpu", "fp32"):
            raise UserError(f"--backend {backend}: profiled on the CPU in fp32 only")
        return get_backend(registry, backend).profile_model(
            registry, name, size=size, batch=batch, weights=weights, options=options,
            repeats=repeats, warmup=warmup, seed=seed)
    spec = registry.model(name, backend)
    check_size(spec, size)
    if batch < 1:
        raise UserError(f"--batch {batch}: must be at least 1")
    model, kwargs = instantiate_model(spec, options, seed=seed)
    if weights:
        load_weights(model, weights, model_name=name)

    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    params_total = sum(p.numel() for p in model.parameters())
    weights_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())

    generator = torch.Generator().manual_seed(seed)
    one = torch.randn(1, IN_CHANNELS, size, size, generator=generator)
    x = torch.randn(batch, IN_CHANNELS, size, size, generator=generator)
    target = torch.randint(0, NUM_CLASSES, (batch, size, size), generator=generator)
    class_weights = torch.ones(NUM_CLASSES)
    model = execution.place_model(model)
    one, x = execution.place_batch(one), execution.place_batch(x)
    target, class_weights = execution.to_device(target), execution.to_device(class_weights)
    cuda = execution.device_type == "cuda"
    sync = (lambda: torch.cuda.synchronize(execution.device)) if cuda else None

    model.eval()
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            model(one)
        gflops = counter.get_total_flops() / 1e9

        def forward() -> None:
            with execution.autocast():
                model(one)

        forward_ms = median_ms(forward, repeats, warmup, sync)

    model.train()
    optimiser = adam([p for p in model.parameters() if p.requires_grad], lr=3e-4)

    scaler = execution.grad_scaler()

    def train_step() -> None:
        with execution.autocast():
            logits = model(x)
        backward_and_step(dice_ce_loss(logits.float(), target, class_weights), optimiser,
                          scaler)

    step_ms = median_ms(train_step, repeats, warmup, sync)
    if not memory:
        peak = None
    elif cuda:
        peak = cuda_step_memory(train_step, execution.device)
    else:
        peak = peak_step_memory(train_step)
    model.eval()
    return {
        "model": name, "family": spec.family, "backend": backend, "size": size,
        "batch": batch, "params": params, "params_total": params_total,
        "gflops": _significant(gflops), "forward_ms": _significant(forward_ms),
        "train_step_ms": _significant(step_ms),
        "train_images_per_s": _significant(batch / (step_ms / 1000.0)),
        "train_peak_mib": None if peak is None else _significant(peak / 2**20),
        "weights_mib": _significant(weights_bytes / 2**20),
        "threads": torch.get_num_threads(), "weights_file": str(weights) if weights else None,
        "options": kwargs, **execution.to_dict(),
    }


def _significant(value: float, digits: int = 6) -> float:
    return float(f"{value:.{digits}g}")


def store_profile(store: Any, profile: dict[str, Any], registry: Registry | None = None) -> str:
    """Write one profile into the results store as a ``kind='profile'`` run (metrics = the
    numbers, config = what was measured); returns its run id. Leaderboards can join it to the
    scores of the same model by the ``model`` and ``backend`` columns."""
    config = {"model": profile["model"], "backend": profile["backend"],
              "size": profile["size"], "batch": profile["batch"],
              "weights": profile.get("weights_file"), "options": profile.get("options", {}),
              "threads": profile["threads"], "device": profile.get("device", "cpu"),
              "precision": profile.get("precision", "fp32")}
    run_id = store.begin_run(config, provenance.collect(registry), kind="profile")
    numbers = {k: v for k, v in profile.items()
               if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))}
    store.finish_run(run_id, metrics=numbers, timings={}, details={"profile": profile},
                     image_rows=[])
    return run_id


def stored_profiles(store: Any) -> list[dict[str, Any]]:
    """The latest completed profile per (model, backend, size, batch, device, precision) in
    the store (profiles made before devices existed ran on the CPU in fp32)."""
    latest: dict[tuple, dict[str, Any]] = {}
    for record in store.runs(kind="profile", status="completed"):
        profile = (record.get("details") or {}).get("profile") or {}
        key = (profile.get("model"), profile.get("backend"), profile.get("size"),
               profile.get("batch"), profile.get("device", "cpu"),
               profile.get("precision", "fp32"))
        latest[key] = {**profile, "run_id": record["run_id"]}
    return list(latest.values())
