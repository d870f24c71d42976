"""Jittor backend (``--backend jittor``): the zoo's architectures re-written in Jittor layer for
layer, trained and run by a Jittor training loop, with PyTorch weights loadable both ways.

Loading this plugin never imports Jittor (its first import compiles for minutes): the backend
spec is always registered, and its factory says what to install when Jittor is missing; the
Jittor model specs are registered only when the ``jittor`` package is installed, and their
factories import it when a model is built.

Each Jittor model shares its torch twin's spec (name, description, citation, defaults, input
sizes) and layer layout, and starts from the twin's initial weights: built under the same
torch seed, a Jittor model and a torch model hold identical parameters.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any, Callable

from jmedbench.hookspecs import hookimpl
from jmedbench.specs import BackendSpec, ModelSpec

from jmedbench_jittor.runtime import INSTALL_HINT, jittor_installed

# model name -> (torch zoo module, Jittor class "module:Class")
JITTOR_MODELS: dict[str, tuple[str, str]] = {
    "unet": ("jmedbench_zoo.unet", "jmedbench_jittor.models.unet:UNet"),
    "attention-unet": ("jmedbench_zoo.unet_variants",
                       "jmedbench_jittor.models.unet_variants:AttentionUNet"),
    "unet-plusplus": ("jmedbench_zoo.unet_variants",
                      "jmedbench_jittor.models.unet_variants:UNetPlusPlus"),
    "unet-3plus": ("jmedbench_zoo.unet_variants",
                   "jmedbench_jittor.models.unet_variants:UNet3Plus"),
    "r2-unet": ("jmedbench_zoo.unet_variants", "jmedbench_jittor.models.unet_variants:R2UNet"),
    "res-unet": ("jmedbench_zoo.unet_variants", "jmedbench_jittor.models.unet_variants:ResUNet"),
    "multires-unet": ("jmedbench_zoo.unet_variants",
                      "jmedbench_jittor.models.unet_variants:MultiResUNet"),
    "fcn8s": ("jmedbench_zoo.encoder_decoders",
              "jmedbench_jittor.models.encoder_decoders:FCN8s"),
    "segnet": ("jmedbench_zoo.encoder_decoders",
               "jmedbench_jittor.models.encoder_decoders:SegNet"),
    "linknet": ("jmedbench_zoo.encoder_decoders",
                "jmedbench_jittor.models.encoder_decoders:LinkNet"),
    "enet": ("jmedbench_zoo.encoder_decoders", "jmedbench_jittor.models.encoder_decoders:ENet"),
    "erfnet": ("jmedbench_zoo.encoder_decoders",
               "jmedbench_jittor.models.encoder_decoders:ERFNet"),
}


def jittor_class(name: str) -> type:
    """The Jittor class of a model (imports Jittor, see runtime.import_jittor)."""
    from jmedbench_jittor.runtime import import_jittor

    import_jittor()
    module, _, cls = JITTOR_MODELS[name][1].partition(":")
    return getattr(importlib.import_module(module), cls)


def torch_spec(name: str) -> ModelSpec:
    module = importlib.import_module(JITTOR_MODELS[name][0])
    return next(spec for spec in module.MODELS if spec.name == name)


def make_factory(name: str, torch_factory: Callable[..., Any]) -> Callable[..., Any]:
    """A factory with the torch factory's signature (the engine reads it to route options)
    that builds the Jittor model and gives it the torch twin's initial weights."""

    def factory(*args: Any, **kwargs: Any) -> Any:
        from jmedbench_jittor.parity import load_torch_state

        bound = inspect.signature(torch_factory).bind(*args, **kwargs)
        twin = torch_factory(*bound.args, **bound.kwargs)
        model = jittor_class(name)(*bound.args, **bound.kwargs)
        load_torch_state(model, twin.state_dict())
        # How to rebuild the twin (ssl pre-trains through it); "_" keeps it out of state_dict.
        model._torch_twin = lambda: torch_factory(*bound.args, **bound.kwargs)
        return model

    factory.__signature__ = inspect.signature(torch_factory)  # type: ignore[attr-defined]
    factory.__name__ = f"jittor_{name.replace('-', '_')}"
    factory.__doc__ = f"Jittor twin of the zoo's '{name}'."
    return factory


def make_backend() -> Any:
    from jmedbench_jittor.runtime import require_jittor

    require_jittor()
    from jmedbench_jittor.backend import JittorBackend
    return JittorBackend()


@hookimpl
def jmedbench_backends():
    return [BackendSpec("jittor", make_backend,
                        "Jittor (CPU, with oneDNN): the source paper's framework; the zoo's "
                        f"{len(JITTOR_MODELS)} twins with weight parity to PyTorch",
                        install=INSTALL_HINT,
                        citation="Hu, Liang, Yang, Zhou, Mu, Martin, Hu. Jittor: a novel deep "
                                 "learning framework with meta-operators and unified graph "
                                 "execution. Science China Information Sciences 63, 2020")]


@hookimpl
def jmedbench_models():
    if not jittor_installed():  # no Jittor: no Jittor models, and `--backend jittor` says why
        return []
    specs = []
    for name in JITTOR_MODELS:
        spec = torch_spec(name)
        specs.append(dataclasses.replace(spec, backend="jittor",
                                         factory=make_factory(name, spec.factory),
                                         tags=tuple(spec.tags) + ("jittor",)))
    return specs
