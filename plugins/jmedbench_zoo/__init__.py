"""First-party architectures, one module per family. Every module of this package that defines
``MODELS`` (a list of :class:`jmedbench.specs.ModelSpec`) is collected by the hook below, so a
new family is one new file."""

import importlib
import pkgutil

from jmedbench.hookspecs import hookimpl


def family_modules():
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "MODELS"):
            yield module


@hookimpl
def jmedbench_models():
    return [spec for module in family_modules() for spec in module.MODELS]
