"""First-party architectures, one module per family. Each module exposes ``MODELS``, a list of
:class:`jmedbench.specs.ModelSpec`; this hook gathers them."""

from jmedbench.hookspecs import hookimpl

from jmedbench_zoo import unet

FAMILY_MODULES = [unet]


@hookimpl
def jmedbench_models():
    return [spec for module in FAMILY_MODULES for spec in module.MODELS]
