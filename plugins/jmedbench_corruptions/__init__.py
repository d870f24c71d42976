"""The robustness suite: classic (ImageNet-C / MedMNIST-C), CT-specific and phone-photo
corruptions, five severities each. Every module of this package that defines ``CORRUPTIONS``
(a list of :class:`jmedbench.specs.CorruptionSpec`) is collected by the hook below, so a new
family is one new file. See ``docs/robustness.md``."""

import importlib
import pkgutil

from jmedbench.hookspecs import hookimpl


def family_modules():
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "CORRUPTIONS"):
            yield module


@hookimpl
def jmedbench_corruptions():
    return [spec for module in family_modules() for spec in module.CORRUPTIONS]
