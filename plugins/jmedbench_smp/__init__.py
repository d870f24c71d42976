"""segmentation_models_pytorch (smp) as a jmedbench plugin: every smp decoder but DPT (see
models.DECODERS) on a curated set of encoders (``smp-<decoder>-<encoder>``), randomly
initialised, any other smp or timm encoder by the ``encoder_name`` model option.

Installed with ``pip install "jmedbench[smp]"`` and found through the ``jmedbench`` entry-point
group like any outside plugin. Loading this module never imports smp (about 6 s): the specs are
plain data, and the library is imported only when a model is built. Where smp is not installed
the hook registers nothing, so ``jmedbench list models`` shows no smp names instead of names
that fail when used.
"""

from __future__ import annotations

import importlib.util

from jmedbench.hookspecs import hookimpl

LIBRARY = "segmentation_models_pytorch"


def library_installed() -> bool:
    """Whether smp can be imported, found without importing it."""
    return importlib.util.find_spec(LIBRARY) is not None


@hookimpl
def jmedbench_models():
    if not library_installed():
        return []
    from jmedbench_smp.models import MODELS

    return list(MODELS)
