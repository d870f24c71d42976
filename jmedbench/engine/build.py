"""From names and options to objects: models, strategies and datasets via the registry, with
every mistake reported as one line before any work starts."""

from __future__ import annotations

import inspect
from typing import Any, Callable

from jmedbench.config import RunConfig
from jmedbench.data import Dataset
from jmedbench.errors import UserError
from jmedbench.labels import IN_CHANNELS, NUM_CLASSES
from jmedbench.registry import Registry, suggest
from jmedbench.specs import ModelSpec
from jmedbench.strategy import ComposedStrategy, Strategy


def accepted_kwargs(func: Callable[..., Any], options: dict[str, Any]) -> tuple[dict, list[str]]:
    """Split options into those ``func`` accepts and those it does not."""
    params = inspect.signature(func).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(options), []
    ok = {k: v for k, v in options.items() if k in params}
    return ok, [k for k in options if k not in params]


def instantiate_model(spec: ModelSpec, options: dict[str, Any] | None = None, *,
                      fitting: dict[str, Any] | None = None, seed: int | None = None,
                      where: str | None = None) -> tuple[Any, dict[str, Any]]:
    """The one way a model is built from its spec, in every backend: ``factory(in_channels,
    num_classes, **kwargs)`` with kwargs = the spec's defaults, then the ``fitting`` keys
    the factory accepts (generic keys such as ``width``), then ``options``, each of which it
    must accept (else one UserError line naming ``where``, ``[model.<name>]`` by default).
    ``seed`` seeds torch's global generator first (weights of torch models and of the Jittor
    twins, which draw their initial weights the torch way). Returns (model, kwargs)."""
    kwargs = dict(spec.defaults)
    kwargs.update(accepted_kwargs(spec.factory, fitting or {})[0])
    ok, rejected = accepted_kwargs(spec.factory, options or {})
    if rejected:
        raise UserError(f"{where or f'[model.{spec.name}]'} option(s) {', '.join(rejected)} "
                        f"not accepted by model '{spec.name}'")
    kwargs.update(ok)
    if seed is not None:
        import torch
        torch.manual_seed(seed)
    return spec.factory(in_channels=IN_CHANNELS, num_classes=NUM_CLASSES, **kwargs), kwargs


def default_parameter_count(spec: ModelSpec) -> int | None:
    """Parameters at the model's default options, built on torch's meta device (no memory, no
    computation); None for a model that cannot be built there (a listing must never fail
    because one model cannot be built)."""
    if spec.backend != "torch":
        return None
    import torch

    try:
        with torch.device("meta"):
            model, _ = instantiate_model(spec)
        return sum(p.numel() for p in model.parameters())
    except Exception:
        return None


def build_model(registry: Registry, cfg: RunConfig, name: str | None = None) -> tuple[Any, ModelSpec]:
    name = name or cfg.model
    spec = registry.model(name, cfg.backend)
    generic = {k: v for k, v in cfg.model_options.items() if not isinstance(v, dict)}
    own = cfg.model_options.get(name, {})
    try:
        model, _ = instantiate_model(spec, own if isinstance(own, dict) else {},
                                     fitting=generic)
    except (TypeError, ValueError) as exc:
        kwargs = {**spec.defaults, **accepted_kwargs(spec.factory, cfg.model_kwargs(name))[0]}
        raise UserError(f"model '{name}' options {kwargs}: {exc}") from None
    return model, spec


def strategy_parts(registry: Registry, name: str) -> list[str]:
    parts = [p.strip() for p in name.split("+")]
    if any(not p for p in parts):
        raise UserError(f"--strategy '{name}': empty part in a '+' combination")
    for part in parts:
        registry.strategy(part)  # raises UnknownNameError with suggestions
    return parts


def build_strategy(registry: Registry, name: str, options: dict[str, Any]) -> Strategy:
    parts = strategy_parts(registry, name)
    built: list[Strategy] = []
    for part in parts:
        spec = registry.strategy(part)
        ok, _ = accepted_kwargs(spec.factory, options)
        built.append(spec.factory(**ok))
    if len(built) == 1:
        return built[0]
    return ComposedStrategy(built, name=name)


def check_strategy_options(registry: Registry, name: str, options: dict[str, Any]) -> None:
    """Every [strategy] key must be accepted by some part of the strategy."""
    known: set[str] = set()
    for part in strategy_parts(registry, name):
        params = inspect.signature(registry.strategy(part).factory).parameters
        known |= set(params)
    unknown = [k for k in options if k not in known]
    if unknown and options:
        # Options for parts not in use are allowed only when they belong to a registered
        # strategy (profiles set ssl_* keys for every run); anything else is a typo.
        all_known: set[str] = set()
        for spec in registry.specs("strategies"):
            all_known |= set(inspect.signature(spec.factory).parameters)
        typos = [k for k in unknown if k not in all_known]
        if typos:
            hint = suggest(typos[0], sorted(all_known))
            extra = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise UserError(f"[strategy] unknown option '{typos[0]}'{extra}")


def build_dataset(registry: Registry, cfg: RunConfig, name: str | None = None) -> Dataset:
    name = name or cfg.dataset
    base, _, argument = name.partition(":")
    spec = registry.dataset(base)
    options = cfg.dataset_options(base)
    if argument:
        if not spec.argument:
            raise UserError(f"dataset '{base}' takes no argument (got '{name}')")
        options[spec.argument] = argument
    elif spec.argument and spec.argument not in options:
        raise UserError(f"dataset '{base}' needs an argument: --dataset {base}:<{spec.argument}>")
    ok, rejected = accepted_kwargs(spec.factory, {"seed": cfg.seed,
                                                  "image_size": cfg.data.image_size, **options})
    if rejected:
        raise UserError(f"[data.{base}] unknown option(s) {', '.join(rejected)} for dataset "
                        f"'{base}'")
    return spec.factory(**ok)
