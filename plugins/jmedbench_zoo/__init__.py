"""First-party architectures, one module per family. Every module of this package that defines
``MODELS`` (a list of :class:`jmedbench.specs.ModelSpec`) is collected by the hook below, so a
new family is one new file."""

from jmedbench.hookspecs import hookimpl
from jmedbench.registry import specs_in_package


@hookimpl
def jmedbench_models():
    return specs_in_package(__name__, "MODELS")
