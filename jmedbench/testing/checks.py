"""The conformance checks themselves, one function per check (see :mod:`jmedbench.testing`
for what each checks and how a plugin author runs them)."""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from jmedbench.config import build_config
from jmedbench.data import stack_slices
from jmedbench.engine.build import accepted_kwargs, build_dataset, instantiate_model
from jmedbench.engine.determinism import requested_threads
from jmedbench.engine.pipeline import predict_subjects, train_model
from jmedbench.engine.train import dice_ce_loss
from jmedbench.labels import IN_CHANNELS, NUM_CLASSES
from jmedbench.registry import Registry, check_spec
from jmedbench.specs import ModelSpec
from jmedbench.strategy import Strategy

FAST_CHECKS = ("spec", "build", "output", "backward", "eval", "seeded_init", "state_dict",
               "encode")
LEARNING_CHECK = "learning"
ALL_CHECKS = FAST_CHECKS + (LEARNING_CHECK,)

CHECK_WIDTH = 8  # base channels for models that take a width: keeps every check fast
LEARNING_STEPS = 80
LEARNING_PROFILE = "quick"  # its [run] dataset is what the learning check trains on
# Batches are drawn at random, so the loss of a model that learns nothing still moves a little
# (a constant output moved 0.2% in 30 steps); a falling loss must beat that clearly.
LEARNING_MIN_DROP = 0.03
# Eval outputs of one image alone and inside a batch may differ by float reordering only.
BATCH_INDEPENDENCE_RTOL, BATCH_INDEPENDENCE_ATOL = 1e-3, 1e-4


class CheckFailed(AssertionError):
    """One conformance check failed; the message says which and why."""


# -- sizes ------------------------------------------------------------------------------------
def smallest_size(spec: ModelSpec, at_least: int = 0) -> int:
    """The smallest side length the spec allows that is also >= ``at_least``."""
    m = max(1, spec.input_multiple)
    need = max(spec.min_size, m, at_least)
    return -(-need // m) * m


def default_sizes(spec: ModelSpec) -> list[tuple[int, int]]:
    """The minimum square size and two larger non-square ones (H != W both ways round), so a
    model that swaps or hard-codes H and W fails."""
    m, base = max(1, spec.input_multiple), smallest_size(spec)
    return [(base, base), (base + m, base + 2 * m), (base + 2 * m, base + m)]


def size_problem(spec: ModelSpec, h: int, w: int) -> str | None:
    """Why (h, w) is not an input size the spec promises to take, or None."""
    for side in (h, w):
        problem = spec.side_problem(side)
        if problem:
            return f"{side} {problem} (the spec's min_size and input_multiple)"
    return None


def as_sizes(sizes: Iterable[int | Sequence[int]]) -> list[tuple[int, int]]:
    out = []
    for s in sizes:
        if isinstance(s, int):
            out.append((s, s))
        else:
            h, w = s
            out.append((int(h), int(w)))
    return out


# -- building ---------------------------------------------------------------------------------
def width_option(width: int | None) -> dict[str, Any]:
    """``width`` as a generic model option (passed only to factories that accept it), as a
    profile's ``[model] width`` is."""
    return {} if width is None else {"width": width}


def model_kwargs(spec: ModelSpec, width: int | None = CHECK_WIDTH) -> dict[str, Any]:
    """The factory keywords the checks use: the spec's defaults, then ``width`` if accepted."""
    return {**spec.defaults, **accepted_kwargs(spec.factory, width_option(width))[0]}


def build(spec: ModelSpec, width: int | None = CHECK_WIDTH, seed: int | None = None
          ) -> torch.nn.Module:
    return instantiate_model(spec, fitting=width_option(width), seed=seed)[0]


def _input(batch: int, h: int, w: int, seed: int) -> torch.Tensor:
    # Values on about the scale models see (HU / 1000 within a window, see engine.preprocess).
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, IN_CHANNELS, h, w, generator=g)


def _describe(x: torch.Tensor) -> str:
    return f"input {tuple(x.shape)}"


def _forward(model: torch.nn.Module, x: torch.Tensor, what: str) -> torch.Tensor:
    """model(x), with a failure message that names the input."""
    try:
        out = model(x)
    except Exception as exc:
        raise CheckFailed(f"{what}: forward of {_describe(x)} raised "
                          f"{type(exc).__name__}: {first_line(exc)}") from exc
    if not isinstance(out, torch.Tensor):
        raise CheckFailed(f"{what}: forward of {_describe(x)} returned {type(out).__name__}, "
                          f"expected one tensor of logits")
    return out


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def _require_equal(a: torch.Tensor, b: torch.Tensor, what: str, why: str) -> None:
    """Outputs that must be bit-identical; else ``what`` (max abs diff ...); ``why``."""
    if not torch.equal(a, b):
        raise CheckFailed(f"{what} (max abs diff {_max_diff(a, b):.3g}); {why}")


# -- the checks -------------------------------------------------------------------------------
@dataclass
class CheckContext:
    spec: ModelSpec
    registry: Registry
    sizes: list[tuple[int, int]]
    width: int | None
    seed: int
    steps: int
    model: torch.nn.Module | None = None


def check_spec_fields(ctx: CheckContext) -> str:
    spec = ctx.spec
    try:
        check_spec(spec)
    except Exception as exc:
        raise CheckFailed(f"spec: {exc}") from exc
    for name in ("family", "description", "citation"):
        value = getattr(spec, name)
        if not isinstance(value, str) or not value.strip():
            raise CheckFailed(f"spec: '{name}' must be a non-empty string (cite the paper in "
                              f"'citation'), got {value!r}")
    if not callable(spec.factory):
        raise CheckFailed(f"spec: factory {spec.factory!r} is not callable")
    if spec.input_multiple < 1 or spec.min_size < 1:
        raise CheckFailed(f"spec: input_multiple ({spec.input_multiple}) and min_size "
                          f"({spec.min_size}) must be >= 1")
    return (f"family {spec.family}, sizes: multiples of {spec.input_multiple}, "
            f">= {spec.min_size}")


def check_build(ctx: CheckContext) -> str:
    kwargs = model_kwargs(ctx.spec, ctx.width)
    try:
        model = build(ctx.spec, ctx.width, ctx.seed)
    except Exception as exc:
        raise CheckFailed(f"build: factory(in_channels={IN_CHANNELS}, num_classes={NUM_CLASSES}"
                          f"{''.join(f', {k}={v!r}' for k, v in kwargs.items())}) raised "
                          f"{type(exc).__name__}: {first_line(exc)}") from exc
    if not isinstance(model, torch.nn.Module):
        raise CheckFailed(f"build: factory returned {type(model).__name__}, expected a "
                          f"torch.nn.Module")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable == 0:
        raise CheckFailed("build: the model has no trainable parameters")
    ctx.model = model
    return f"{trainable:,} trainable parameters with {kwargs or 'no options'}"


def _model(ctx: CheckContext) -> torch.nn.Module:
    if ctx.model is None:
        ctx.model = build(ctx.spec, ctx.width, ctx.seed)
    return ctx.model


def check_output(ctx: CheckContext) -> str:
    model = _model(ctx).train()
    for i, (h, w) in enumerate(ctx.sizes):
        x = _input(2, h, w, ctx.seed + i)
        for mode in ("train", "eval"):
            model.train(mode == "train")
            with torch.no_grad():
                out = _forward(model, x, f"output ({mode} mode)")
            expected = (2, NUM_CLASSES, h, w)
            if tuple(out.shape) != expected:
                raise CheckFailed(f"output: shape {tuple(out.shape)} for {_describe(x)} in "
                                  f"{mode} mode, expected {expected} (B, num_classes, H, W)")
            if out.dtype != torch.float32:
                raise CheckFailed(f"output: dtype {out.dtype} for {_describe(x)} in {mode} "
                                  f"mode, expected torch.float32")
            if not torch.isfinite(out).all():
                raise CheckFailed(f"output: non-finite logits (NaN or inf) for {_describe(x)} "
                                  f"in {mode} mode")
    model.eval()
    return "(B, 3, H, W) float32 for " + ", ".join(f"{h}x{w}" for h, w in ctx.sizes)


def check_backward(ctx: CheckContext) -> str:
    model = _model(ctx).train()
    h, w = ctx.sizes[-1]
    x = _input(2, h, w, ctx.seed)
    target = torch.randint(0, NUM_CLASSES, (2, h, w),
                           generator=torch.Generator().manual_seed(ctx.seed))
    model.zero_grad(set_to_none=True)
    out = _forward(model, x, "backward (train mode, batch 2)")
    loss = dice_ce_loss(out, target, torch.ones(NUM_CLASSES))
    try:
        loss.backward()
    except Exception as exc:
        raise CheckFailed(f"backward: loss.backward() raised {type(exc).__name__}: "
                          f"{first_line(exc)}") from exc
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    unused = [n for n, p in trainable if p.grad is None]
    if unused:
        raise CheckFailed(f"backward: {len(unused)} trainable parameter(s) get no gradient "
                          f"(unused in forward; delete them or set requires_grad=False): "
                          f"{_names(unused)}")
    bad = [n for n, p in trainable if not torch.isfinite(p.grad).all()]
    if bad:
        raise CheckFailed(f"backward: non-finite gradient (NaN or inf) for {_names(bad)}")
    zero = [n for n, p in trainable if not p.grad.any()]
    model.zero_grad(set_to_none=True)
    note = f"; all-zero gradient (allowed, e.g. a bias before BatchNorm): {_names(zero)}" if zero else ""
    return f"finite gradients for all {len(trainable)} trainable tensors at {h}x{w}{note}"


def _names(names: list[str], shown: int = 6) -> str:
    more = f", ... ({len(names) - shown} more)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def check_eval(ctx: CheckContext) -> str:
    model = _model(ctx).eval()
    h, w = ctx.sizes[0]
    x = _input(2, h, w, ctx.seed + 7)
    buffers_before = {n: b.clone() for n, b in model.named_buffers()}
    with torch.no_grad():
        first = _forward(model, x, "eval (batch 2)")
        second = _forward(model, x, "eval (batch 2)")
        _require_equal(first, second, f"eval: not deterministic: two eval-mode forwards of "
                       f"the same {_describe(x)} differ",
                       "is dropout or noise active outside training?")
        alone = _forward(model, x[:1], "eval (batch 1)")
    if tuple(alone.shape) != (1, NUM_CLASSES, h, w):
        raise CheckFailed(f"eval: batch 1 gives shape {tuple(alone.shape)}, expected "
                          f"{(1, NUM_CLASSES, h, w)}")
    if not torch.allclose(alone, first[:1], rtol=BATCH_INDEPENDENCE_RTOL,
                          atol=BATCH_INDEPENDENCE_ATOL):
        raise CheckFailed(f"eval: an image's logits depend on the rest of its batch (max abs "
                          f"diff {_max_diff(alone, first[:1]):.3g} between batch 1 and batch 2); "
                          f"is a normalisation layer using batch statistics in eval mode?")
    changed = [n for n, b in model.named_buffers()
               if n in buffers_before and not torch.equal(b, buffers_before[n])]
    if changed:
        raise CheckFailed(f"eval: eval-mode forwards changed buffers {_names(changed)} "
                          f"(BatchNorm kept in train mode?)")
    return "deterministic, batch 1 works, batch-independent, buffers unchanged"


def check_seeded_init(ctx: CheckContext) -> str:
    first = build(ctx.spec, ctx.width, ctx.seed).state_dict()
    again = build(ctx.spec, ctx.width, ctx.seed).state_dict()
    differ = [k for k in first if not torch.equal(first[k], again[k])]
    if list(first) != list(again) or differ:
        raise CheckFailed(f"seeded_init: two builds after torch.manual_seed({ctx.seed}) differ "
                          f"in {_names(differ) or 'their keys'}; draw all randomness from "
                          f"torch's global generator")
    other = build(ctx.spec, ctx.width, ctx.seed + 1).state_dict()
    if all(torch.equal(first[k], other[k]) for k in first):
        raise CheckFailed(f"seeded_init: seeds {ctx.seed} and {ctx.seed + 1} give identical "
                          f"weights; does the factory reseed torch itself?")
    return f"same seed -> identical {len(first)} tensors; another seed -> different"


def check_state_dict(ctx: CheckContext) -> str:
    model = _model(ctx).eval()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    size = buffer.tell()
    buffer.seek(0)
    fresh = build(ctx.spec, ctx.width, ctx.seed + 1)
    try:
        fresh.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    except Exception as exc:
        raise CheckFailed(f"state_dict: loading a saved state dict into a fresh instance failed: "
                          f"{type(exc).__name__}: {first_line(exc)}") from exc
    fresh.eval()
    h, w = ctx.sizes[0]
    x = _input(1, h, w, ctx.seed + 11)
    with torch.no_grad():
        a = _forward(model, x, "state_dict")
        b = _forward(fresh, x, "state_dict (reloaded)")
    _require_equal(a, b, "state_dict: a reloaded copy gives different eval outputs",
                   "is some state kept outside the state dict (a non-persistent buffer, a plain "
                   "tensor attribute)?")
    return f"torch.save -> load (strict) -> equal eval outputs ({size / 2**20:.2f} MiB)"


def check_encode(ctx: CheckContext) -> str:
    model = _model(ctx).eval()
    if not callable(getattr(model, "encode", None)):
        raise CheckFailed("encode: the spec says has_encoder=True but the model has no "
                          "encode(x) method")
    h, w = ctx.sizes[0]
    x = _input(2, h, w, ctx.seed + 13)
    try:
        with torch.no_grad():
            feats = model.encode(x)
    except Exception as exc:
        raise CheckFailed(f"encode: encode({_describe(x)}) raised {type(exc).__name__}: "
                          f"{first_line(exc)}") from exc
    if not isinstance(feats, torch.Tensor) or feats.ndim != 4 or feats.shape[0] != 2:
        got = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
        raise CheckFailed(f"encode: encode({_describe(x)}) returned {got}, expected a "
                          f"(2, C, h, w) tensor")
    if not torch.isfinite(feats).all():
        raise CheckFailed("encode: non-finite features")
    return f"encode({h}x{w}) -> {tuple(feats.shape)}"


def learning_image_size(spec: ModelSpec) -> int:
    """The phantom's side for the learning check: >= 64, allowed by the model, a multiple of 16
    (the phantom's own rule)."""
    m = math.lcm(16, max(1, spec.input_multiple))
    need = max(64, spec.min_size)
    return -(-need // m) * m


def run_threads() -> int:
    """The intra-op threads ``jmedbench run`` trains with: ``JMEDBENCH_THREADS`` where set,
    else one per core this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return requested_threads() or cores or 1


def check_learning(ctx: CheckContext) -> str:
    cfg = build_config(LEARNING_PROFILE)
    cfg.model, cfg.backend, cfg.seed = ctx.spec.name, ctx.spec.backend, ctx.seed
    cfg.model_options = width_option(ctx.width)
    cfg.data.image_size = learning_image_size(ctx.spec)
    cfg.train.steps = ctx.steps
    try:
        dataset = build_dataset(ctx.registry, cfg)
    except LookupError as exc:
        raise CheckFailed(f"learning: needs the '{cfg.dataset}' dataset plugin ({exc})") from exc
    threads = torch.get_num_threads()
    torch.set_num_threads(run_threads())  # on the cores a run trains on (a test may hold one)
    try:  # the engine's own training; no strategy, since the model alone is checked
        trained = train_model(ctx.registry, cfg, dataset=dataset, strategy=Strategy(),
                              log_every=1)
    except Exception as exc:
        raise CheckFailed(f"learning: training raised {type(exc).__name__}: "
                          f"{first_line(exc)}") from exc
    finally:
        torch.set_num_threads(threads)
    losses = trained.result.losses
    if not all(math.isfinite(v) for v in losses):
        raise CheckFailed(f"learning: the loss became non-finite within {ctx.steps} steps")
    window = min(10, len(losses) // 2)
    start, end = float(np.mean(losses[:window])), float(np.mean(losses[-window:]))
    if not end < start * (1 - LEARNING_MIN_DROP):
        raise CheckFailed(f"learning: the loss did not fall in {ctx.steps} steps on the "
                          f"{cfg.dataset} (mean of first {window} steps {start:.4f}, of last "
                          f"{window} {end:.4f}; needs a drop of {LEARNING_MIN_DROP:.0%})")
    test_images, test_labels = stack_slices(dataset.split("test"))
    pred = predict_subjects(trained.model, [test_images], cfg.eval.batch_size,
                            trained.backend)[0]
    bone = int(np.count_nonzero(pred > 0))
    if bone == 0:
        raise CheckFailed(f"learning: after {ctx.steps} steps every test pixel is predicted as "
                          f"background (the loss fell {start:.4f} -> {end:.4f}); is the last "
                          f"layer starved or the output mis-aligned?")
    truth = test_labels > 0
    dice = 2 * np.count_nonzero((pred > 0) & truth) / (bone + np.count_nonzero(truth))
    return (f"loss {start:.3f} -> {end:.3f} in {ctx.steps} steps at "
            f"{cfg.data.image_size}px; {bone} bone pixels predicted, bone Dice {dice:.3f}")


CHECK_FUNCTIONS: dict[str, Callable[[CheckContext], str]] = {
    "spec": check_spec_fields, "build": check_build, "output": check_output,
    "backward": check_backward, "eval": check_eval, "seeded_init": check_seeded_init,
    "state_dict": check_state_dict, "encode": check_encode, "learning": check_learning,
}
