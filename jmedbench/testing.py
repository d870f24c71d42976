"""Conformance checks for model plugins: what every architecture must do before it is benchmarked.

A plugin author calls one line::

    from jmedbench.testing import check_model
    report = check_model("my_unet")            # raises AssertionError on the first failure
    report = check_model("my_unet", learning=True)   # also trains briefly on the phantom

or, in a pytest file, subclasses :class:`ModelConformance` (smp style)::

    from jmedbench.testing import ModelConformance

    class TestMyModels(ModelConformance):
        model_names = ["my_unet", "my_fcn"]

which gives, per model, ``test_conformance`` (the fast checks, about a second at width 8) and
``test_learns_on_phantom`` (marked ``slow``).

The checks, in order (names as in :data:`FAST_CHECKS` and :data:`LEARNING_CHECK`):

- ``spec``: name, family, description and citation non-empty; sizes and backend sane.
- ``build``: ``factory(in_channels=1, num_classes=3, **defaults, width=8)`` gives a module
  with trainable parameters (``width`` only where the factory accepts it, as the engine does).
- ``output``: logits (B, 3, H, W), float32, finite, for several allowed non-square sizes.
- ``backward``: in train mode at batch 2, Dice + cross-entropy gives a finite gradient to
  every trainable parameter; parameters that get no gradient at all are named (an unused
  parameter is a bug: it is saved, counted and never trained).
- ``eval``: in eval mode two forwards are equal, batch 1 works, an image's logits do not
  depend on the rest of its batch, and no buffer (BatchNorm statistics) changes.
- ``seeded_init``: the same ``torch.manual_seed`` gives identical weights, another seed
  different ones (a factory that reseeds the global generator would hide seeds).
- ``state_dict``: save to bytes, load into a fresh instance (strict), equal eval outputs.
- ``encode``: when the spec says ``has_encoder``, ``encode(x)`` is a finite (B, C, h, w) tensor.
- ``learning`` (``learning=True``): ~80 Adam steps on the ``phantom`` dataset (profile
  ``quick``) with the baseline strategy: the loss falls (mean of the last 10 steps at least
  3% below the mean of the first 10) and some test pixel is predicted as bone (class 1 or 2). The seed
  library this project replaces had models that silently predicted all background.

The global torch random state of the caller is restored afterwards.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from jmedbench.engine.build import IN_CHANNELS, NUM_CLASSES, accepted_kwargs
from jmedbench.engine.train import dice_ce_loss
from jmedbench.registry import Registry, check_spec, get_registry
from jmedbench.specs import ModelSpec

FAST_CHECKS = ("spec", "build", "output", "backward", "eval", "seeded_init", "state_dict",
               "encode")
LEARNING_CHECK = "learning"
ALL_CHECKS = FAST_CHECKS + (LEARNING_CHECK,)

CHECK_WIDTH = 8  # base channels for models that take a width: keeps every check fast
LEARNING_STEPS = 80
# Batches are drawn at random, so the loss of a model that learns nothing still moves a little
# (a constant output moved 0.2% in 30 steps); a falling loss must beat that clearly.
LEARNING_MIN_DROP = 0.03
# Eval outputs of one image alone and inside a batch may differ by float reordering only.
BATCH_INDEPENDENCE_RTOL, BATCH_INDEPENDENCE_ATOL = 1e-3, 1e-4


class CheckFailed(AssertionError):
    """One conformance check failed; the message says which and why."""


@dataclass
class CheckResult:
    name: str
    passed: bool
    detail: str
    seconds: float


@dataclass
class ConformanceReport:
    """What :func:`check_model` found: one :class:`CheckResult` per check that ran."""

    model: str
    backend: str
    results: list[CheckResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # check -> why it did not run

    @property
    def passed(self) -> list[str]:
        return [r.name for r in self.results if r.passed]

    @property
    def failed(self) -> list[str]:
        return [r.name for r in self.results if not r.passed]

    @property
    def ok(self) -> bool:
        return not self.failed

    def result(self, name: str) -> CheckResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"check '{name}' did not run (ran: {', '.join(r.name for r in self.results)})")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "backend": self.backend, "ok": self.ok,
                "passed": self.passed, "failed": self.failed, "skipped": dict(self.skipped),
                "checks": [vars(r) for r in self.results]}

    def __str__(self) -> str:
        lines = [f"conformance of model '{self.model}' ({self.backend}): "
                 f"{len(self.passed)} passed, {len(self.failed)} failed"]
        for r in self.results:
            lines.append(f"  {'ok  ' if r.passed else 'FAIL'} {r.name:<12} {r.detail}")
        for name, why in self.skipped.items():
            lines.append(f"  skip {name:<12} {why}")
        return "\n".join(lines)


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
        if side < spec.min_size:
            return f"{side} is below the model's min_size {spec.min_size}"
        if side % max(1, spec.input_multiple):
            return f"{side} is not a multiple of the model's input_multiple {spec.input_multiple}"
    return None


def _as_sizes(sizes: Iterable[int | Sequence[int]]) -> list[tuple[int, int]]:
    out = []
    for s in sizes:
        if isinstance(s, int):
            out.append((s, s))
        else:
            h, w = s
            out.append((int(h), int(w)))
    return out


# -- building ---------------------------------------------------------------------------------
def model_kwargs(spec: ModelSpec, width: int | None = CHECK_WIDTH) -> dict[str, Any]:
    """The factory keywords the checks use: the spec's defaults, then ``width`` if accepted."""
    kwargs = dict(spec.defaults)
    if width is not None:
        ok, _ = accepted_kwargs(spec.factory, {"width": width})
        kwargs.update(ok)
    return kwargs


def build(spec: ModelSpec, width: int | None = CHECK_WIDTH, seed: int | None = None
          ) -> torch.nn.Module:
    if seed is not None:
        torch.manual_seed(seed)
    return spec.factory(in_channels=IN_CHANNELS, num_classes=NUM_CLASSES,
                        **model_kwargs(spec, width))


def _input(batch: int, h: int, w: int, seed: int) -> torch.Tensor:
    # Values in the scale models see (HU / 1000, see engine.preprocess): air -1, bone ~1.5.
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
                          f"{type(exc).__name__}: {_first_line(exc)}") from exc
    if not isinstance(out, torch.Tensor):
        raise CheckFailed(f"{what}: forward of {_describe(x)} returned {type(out).__name__}, "
                          f"expected one tensor of logits")
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


# -- the checks -------------------------------------------------------------------------------
@dataclass
class _Context:
    spec: ModelSpec
    registry: Registry
    sizes: list[tuple[int, int]]
    width: int | None
    seed: int
    steps: int
    model: torch.nn.Module | None = None


def check_spec_fields(ctx: _Context) -> str:
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


def check_build(ctx: _Context) -> str:
    kwargs = model_kwargs(ctx.spec, ctx.width)
    try:
        model = build(ctx.spec, ctx.width, ctx.seed)
    except Exception as exc:
        raise CheckFailed(f"build: factory(in_channels={IN_CHANNELS}, num_classes={NUM_CLASSES}"
                          f"{''.join(f', {k}={v!r}' for k, v in kwargs.items())}) raised "
                          f"{type(exc).__name__}: {_first_line(exc)}") from exc
    if not isinstance(model, torch.nn.Module):
        raise CheckFailed(f"build: factory returned {type(model).__name__}, expected a "
                          f"torch.nn.Module")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable == 0:
        raise CheckFailed("build: the model has no trainable parameters")
    ctx.model = model
    return f"{trainable:,} trainable parameters with {kwargs or 'no options'}"


def _model(ctx: _Context) -> torch.nn.Module:
    if ctx.model is None:
        ctx.model = build(ctx.spec, ctx.width, ctx.seed)
    return ctx.model


def check_output(ctx: _Context) -> str:
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


def check_backward(ctx: _Context) -> str:
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
                          f"{_first_line(exc)}") from exc
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


def check_eval(ctx: _Context) -> str:
    model = _model(ctx).eval()
    h, w = ctx.sizes[0]
    x = _input(2, h, w, ctx.seed + 7)
    buffers_before = {n: b.clone() for n, b in model.named_buffers()}
    with torch.no_grad():
        first = _forward(model, x, "eval (batch 2)")
        second = _forward(model, x, "eval (batch 2)")
        if not torch.equal(first, second):
            raise CheckFailed(f"eval: not deterministic: two eval-mode forwards of the same "
                              f"{_describe(x)} differ (max abs diff {_max_diff(first, second):.3g}); "
                              f"is dropout or noise active outside training?")
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


def check_seeded_init(ctx: _Context) -> str:
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


def check_state_dict(ctx: _Context) -> str:
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
                          f"{type(exc).__name__}: {_first_line(exc)}") from exc
    fresh.eval()
    h, w = ctx.sizes[0]
    x = _input(1, h, w, ctx.seed + 11)
    with torch.no_grad():
        a = _forward(model, x, "state_dict")
        b = _forward(fresh, x, "state_dict (reloaded)")
    if not torch.equal(a, b):
        raise CheckFailed(f"state_dict: a reloaded copy gives different eval outputs (max abs "
                          f"diff {_max_diff(a, b):.3g}); is some state kept outside the state "
                          f"dict (a non-persistent buffer, a plain tensor attribute)?")
    return f"torch.save -> load (strict) -> equal eval outputs ({size / 2**20:.2f} MiB)"


def check_encode(ctx: _Context) -> str:
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
                          f"{_first_line(exc)}") from exc
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


def check_learning(ctx: _Context) -> str:
    from jmedbench.config import build_config
    from jmedbench.data import stack_slices
    from jmedbench.engine.build import build_dataset
    from jmedbench.engine.preprocess import hu_to_input
    from jmedbench.engine.train import predict, train_supervised
    from jmedbench.strategy import Strategy

    cfg = build_config("quick")
    cfg.dataset = "phantom"
    cfg.seed = ctx.seed
    cfg.data.image_size = learning_image_size(ctx.spec)
    cfg.train.steps = ctx.steps
    try:
        dataset = build_dataset(ctx.registry, cfg)
    except LookupError as exc:
        raise CheckFailed(f"learning: needs the 'phantom' dataset plugin ({exc})") from exc
    images, labels = stack_slices(dataset.split("train"))
    model = build(ctx.spec, ctx.width, ctx.seed)
    try:
        result = train_supervised(model, Strategy(), torch.from_numpy(hu_to_input(images)),
                                  torch.from_numpy(labels), cfg.train, ctx.seed, NUM_CLASSES,
                                  log_every=1)
    except Exception as exc:
        raise CheckFailed(f"learning: training raised {type(exc).__name__}: "
                          f"{_first_line(exc)}") from exc
    losses = result.losses
    if not all(math.isfinite(v) for v in losses):
        raise CheckFailed(f"learning: the loss became non-finite within {ctx.steps} steps")
    window = min(10, len(losses) // 2)
    start, end = float(np.mean(losses[:window])), float(np.mean(losses[-window:]))
    if not end < start * (1 - LEARNING_MIN_DROP):
        raise CheckFailed(f"learning: the loss did not fall in {ctx.steps} steps on the phantom "
                          f"(mean of first {window} steps {start:.4f}, of last {window} "
                          f"{end:.4f}; needs a drop of {LEARNING_MIN_DROP:.0%})")
    test_images, test_labels = stack_slices(dataset.split("test"))
    pred = predict(model, torch.from_numpy(hu_to_input(test_images)))
    bone = int(np.count_nonzero(pred > 0))
    if bone == 0:
        raise CheckFailed(f"learning: after {ctx.steps} steps every test pixel is predicted as "
                          f"background (the loss fell {start:.4f} -> {end:.4f}); is the last "
                          f"layer starved or the output mis-aligned?")
    truth = test_labels > 0
    dice = 2 * np.count_nonzero((pred > 0) & truth) / (bone + np.count_nonzero(truth))
    return (f"loss {start:.3f} -> {end:.3f} in {ctx.steps} steps at "
            f"{cfg.data.image_size}px; {bone} bone pixels predicted, bone Dice {dice:.3f}")


CHECK_FUNCTIONS: dict[str, Callable[[_Context], str]] = {
    "spec": check_spec_fields, "build": check_build, "output": check_output,
    "backward": check_backward, "eval": check_eval, "seeded_init": check_seeded_init,
    "state_dict": check_state_dict, "encode": check_encode, "learning": check_learning,
}


def check_model(name: str, *, sizes: Iterable[int | Sequence[int]] | None = None,
                learning: bool = False, backend: str = "torch",
                registry: Registry | None = None, width: int | None = CHECK_WIDTH,
                steps: int = LEARNING_STEPS, seed: int = 0,
                checks: Iterable[str] | None = None,
                raise_on_failure: bool = True) -> ConformanceReport:
    """Run the conformance checks on the registered model ``name``.

    Raises :class:`AssertionError` (:class:`CheckFailed`) naming the model, the check and the
    reason at the first failure; with ``raise_on_failure=False`` every check runs and the
    returned :class:`ConformanceReport` lists the failures. ``sizes`` are ints (square) or
    (H, W) pairs, each allowed by the spec (default :func:`default_sizes`). ``registry``
    defaults to the installed plugins; pass your own :class:`jmedbench.registry.Registry` to
    check a plugin object before it is installed. ``checks`` limits the run to some of
    :data:`ALL_CHECKS` (``spec`` always runs); ``learning=True`` adds the learning check.
    """
    registry = registry or get_registry()
    spec = registry.model(name, backend)  # unknown name -> UnknownNameError with suggestions
    wanted = list(FAST_CHECKS) + ([LEARNING_CHECK] if learning else [])
    if checks is not None:
        checks = list(checks)
        unknown = [c for c in checks if c not in ALL_CHECKS]
        if unknown:
            raise ValueError(f"unknown check(s) {unknown}; known: {', '.join(ALL_CHECKS)}")
        wanted = ["spec"] + [c for c in ALL_CHECKS if c in checks and c != "spec"]
    chosen = _as_sizes(sizes) if sizes is not None else default_sizes(spec)
    for h, w in chosen:
        problem = size_problem(spec, h, w)
        if problem:
            raise ValueError(f"check_model('{name}', sizes=...): size {h}x{w}: {problem}")
    report = ConformanceReport(model=name, backend=backend)
    ctx = _Context(spec=spec, registry=registry, sizes=chosen, width=width, seed=seed,
                   steps=steps)
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state as it was
        for check in wanted:
            if check != "spec" and backend != "torch":
                report.skipped[check] = f"tensor checks need the torch backend, not {backend}"
                continue
            if check == "encode" and not spec.has_encoder:
                report.skipped[check] = "the spec says has_encoder=False"
                continue
            if check not in ("spec", "build") and "build" in report.failed:
                report.skipped[check] = "the model could not be built"
                continue
            t0 = time.perf_counter()
            try:
                detail = CHECK_FUNCTIONS[check](ctx)
            except CheckFailed as exc:
                reason = str(exc).removeprefix(f"{check}: ")
                report.results.append(CheckResult(check, False, reason,
                                                  time.perf_counter() - t0))
                if raise_on_failure:
                    passed = ", ".join(report.passed) or "none"
                    raise CheckFailed(f"model '{name}' failed conformance check '{check}': "
                                      f"{reason} (passed before it: {passed})") from exc.__cause__
                continue
            except Exception as exc:  # a crash inside a check is a failure of that check
                message = f"{check}: raised {type(exc).__name__}: {_first_line(exc)}"
                report.results.append(CheckResult(check, False, message,
                                                  time.perf_counter() - t0))
                if raise_on_failure:
                    raise CheckFailed(f"model '{name}' failed conformance check '{check}': "
                                      f"{message}") from exc
                continue
            report.results.append(CheckResult(check, True, detail, time.perf_counter() - t0))
    return report


# -- pytest form ------------------------------------------------------------------------------
def _slow(func: Callable) -> Callable:
    try:
        import pytest
    except ImportError:  # pytest is a dev dependency; without it the class is just a class
        return func
    return pytest.mark.slow(func)


class ModelConformance:
    """Subclass in a pytest file and set ``model_names`` (a list, or a wildcard pattern string
    such as ``"my_*"``); every test below then runs once per model::

        class TestMyModels(ModelConformance):
            model_names = ["my_unet", "my_fcn"]

    Override :meth:`make_registry` to check plugins that are not installed (register them into
    a fresh :class:`jmedbench.registry.Registry`), and ``learning_steps`` / ``sizes`` / ``width``
    to tune the checks.
    """

    model_names: Sequence[str] | str = ()
    backend: str = "torch"
    sizes: Sequence[int | Sequence[int]] | None = None
    width: int | None = CHECK_WIDTH
    learning_steps: int = LEARNING_STEPS

    def make_registry(self) -> Registry:
        return get_registry()

    def pytest_generate_tests(self, metafunc) -> None:
        # pytest calls this hook on test classes too: it parametrises `model_name`.
        if "model_name" in metafunc.fixturenames:
            names = self.model_names
            if isinstance(names, str):
                names = self.make_registry().names("models", names)
            metafunc.parametrize("model_name", list(names))

    def _check(self, model_name: str, **kwargs: Any) -> ConformanceReport:
        return check_model(model_name, sizes=self.sizes, backend=self.backend,
                           registry=self.make_registry(), width=self.width, **kwargs)

    def test_conformance(self, model_name: str) -> None:
        """spec, build, output sizes, backward, eval, seeded init, state dict, encode."""
        self._check(model_name)

    @_slow
    def test_learns_on_phantom(self, model_name: str) -> None:
        """The loss falls and bone is predicted after a short training on the phantom."""
        self._check(model_name, learning=True, checks=["learning"], steps=self.learning_steps)
