"""The robustness suite: classic (ImageNet-C / MedMNIST-C), CT-specific and phone-photo
corruptions, five severities each. Every module of this package that defines ``CORRUPTIONS``
(a list of :class:`jmedbench.specs.CorruptionSpec`) is collected by the hook below, so a new
family is one new file. See ``docs/robustness.md``."""

from jmedbench.hookspecs import hookimpl
from jmedbench.registry import specs_in_package


@hookimpl
def jmedbench_corruptions():
    return specs_in_package(__name__, "CORRUPTIONS")
