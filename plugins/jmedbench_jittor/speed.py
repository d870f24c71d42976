"""Jittor against PyTorch on this machine: forward and training-step time of a model and its
torch twin holding the same weights, measured in one process, alternating torch and Jittor
repeat by repeat so that a change in machine load hits both alike. Used by
``jmedbench profile --backend jittor`` and ``benchmarks/bench_jittor.py``.

- forward: eval mode, batch 1, no gradients (Jittor: until the output is computed, ``sync``).
- train step: forward, Dice + CE loss, backward, Adam step at ``batch`` (Jittor: until the
  updated weights are computed, ``sync_all``).
- ratio = Jittor time / torch time (medians): above 1, Jittor is slower.
- Jittor compiles a kernel the first time it meets an operation and shape; ``warmup`` repeats
  (at least 2) absorb that, and the compiled kernels are cached on disk for the next process.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from jmedbench.engine.build import instantiate_model
from jmedbench.errors import UserError
from jmedbench.labels import IN_CHANNELS, NUM_CLASSES

from jmedbench_jittor.loss import dice_ce_loss as jittor_loss
from jmedbench_jittor.loss import parameter_count, trainable


def _timed(func) -> float:
    t0 = time.perf_counter()
    func()
    return time.perf_counter() - t0


def _alternating(models: tuple[Any, Any], mode: str, first: tuple[str, Any],
                 second: tuple[str, Any], warmup: int, repeats: int) -> dict[str, float]:
    """Median milliseconds of two timed functions, called in turn (``first`` then ``second``)
    ``warmup + repeats`` times with both models in ``mode``; the warm-up calls are not kept."""
    for model in models:  # Jittor's train() takes no mode argument
        model.train() if mode == "train" else model.eval()
    times: dict[str, list[float]] = {first[0]: [], second[0]: []}
    for i in range(warmup + repeats):
        pair = [(key, _timed(func)) for key, func in (first, second)]
        if i >= warmup:
            for key, seconds in pair:
                times[key].append(seconds)
    return {key: statistics.median(values) * 1000.0 for key, values in times.items()}


def build_pair(registry: Any, name: str, options: dict[str, Any] | None = None,
               seed: int = 0, weights: str | None = None) -> tuple[Any, Any, Any, dict]:
    """(jittor spec, torch model, Jittor model with the same weights, kwargs)."""
    from jmedbench_jittor.parity import load_torch_state

    spec = registry.model(name, "jittor")
    jittor_model, kwargs = instantiate_model(spec, options, seed=seed)
    torch_model, _ = instantiate_model(registry.model(name, "torch"), kwargs)
    if weights:
        from jmedbench.weights import load_weights
        load_weights(torch_model, weights, model_name=name)
    load_torch_state(jittor_model, torch_model.state_dict())
    return spec, torch_model, jittor_model, kwargs


def compare(torch_model: Any, jittor_model: Any, size: int, batch: int, repeats: int = 5,
            warmup: int = 2, seed: int = 0) -> dict[str, float]:
    """Median forward and train-step times of both models, alternating; times in ms."""
    import torch

    from jmedbench.engine.train import dice_ce_loss as torch_loss
    from jmedbench_jittor.kernels import Adam
    from jmedbench_jittor.runtime import import_jittor

    jt = import_jittor()
    warmup = max(2, warmup)
    rng = np.random.default_rng(seed)
    one = rng.normal(0.2, 0.5, (1, IN_CHANNELS, size, size)).astype(np.float32)
    x = rng.normal(0.2, 0.5, (batch, IN_CHANNELS, size, size)).astype(np.float32)
    y = rng.integers(0, NUM_CLASSES, (batch, size, size))
    weights = np.ones(NUM_CLASSES, np.float32)
    t_one, t_x, t_y, t_w = (torch.from_numpy(a) for a in (one, x, y, weights))
    j_x, j_y, j_w = jt.array(x), jt.array(y), jt.array(weights)

    def torch_forward() -> None:
        with torch.no_grad():
            torch_model(t_one)

    def jittor_forward() -> None:
        with jt.no_grad():
            jittor_model(jt.array(one)).sync()

    torch_opt = torch.optim.Adam([p for p in torch_model.parameters() if p.requires_grad],
                                 lr=3e-4)

    def torch_step() -> None:
        loss = torch_loss(torch_model(t_x), t_y, t_w)
        torch_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch_opt.step()

    jittor_model.train()
    jittor_opt = Adam(trainable(jittor_model), lr=3e-4)

    def jittor_step() -> None:
        jittor_opt.step(jittor_loss(jittor_model(j_x), j_y, j_w))
        jt.sync_all()

    models = (torch_model, jittor_model)
    ms = {**_alternating(models, "eval", ("tf", torch_forward), ("jf", jittor_forward),
                         warmup, repeats),
          **_alternating(models, "train", ("ts", torch_step), ("js", jittor_step),
                         warmup, repeats)}
    for model in models:
        model.eval()
    return {"torch_forward_ms": round(ms["tf"], 3), "forward_ms": round(ms["jf"], 3),
            "forward_ratio": round(ms["jf"] / ms["tf"], 3),
            "torch_train_step_ms": round(ms["ts"], 3), "train_step_ms": round(ms["js"], 3),
            "train_step_ratio": round(ms["js"] / ms["ts"], 3)}


def profile_model(registry: Any, name: str, *, size: int, batch: int,
                  weights: str | None = None, options: dict[str, Any] | None = None,
                  repeats: int = 5, warmup: int = 2, seed: int = 0) -> dict[str, Any]:
    """A ``jmedbench profile`` row for the Jittor model, with the torch twin's times and the
    ratios measured in the same run (see :data:`jmedbench.engine.profiling.PROFILE_KEYS`)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from jmedbench.engine.profiling import check_size

    spec, torch_model, jittor_model, kwargs = build_pair(registry, name, options, seed, weights)
    check_size(spec, size)
    if batch < 1:
        raise UserError(f"--batch {batch}: must be at least 1")
    torch_model.eval()
    with torch.no_grad():  # the same architecture: the torch twin's count is the model's
        counter = FlopCounterMode(display=False)
        with counter:
            torch_model(torch.zeros(1, IN_CHANNELS, size, size))
    timing = compare(torch_model, jittor_model, size, batch, repeats, warmup, seed)
    params = parameter_count(jittor_model)
    weights_bytes = sum(int(np.prod(v.shape)) * 4 for v in jittor_model.state_dict().values())
    return {"model": name, "family": spec.family, "backend": "jittor", "size": size,
            "batch": batch, "params": params, "params_total": params,
            "gflops": round(counter.get_total_flops() / 1e9, 4), **timing,
            "train_images_per_s": round(batch / (timing["train_step_ms"] / 1000.0), 3),
            "train_peak_mib": None, "weights_mib": round(weights_bytes / 2**20, 3),
            "threads": torch.get_num_threads(), "weights_file": str(weights) if weights else None,
            "options": kwargs}
