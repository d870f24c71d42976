"""MONAI's 2-D-capable segmentation networks as a jmedbench plugin (``monai-<network>``), with
2-D settings and random initialisation.

Installed with ``pip install "jmedbench[monai]"`` and found through the ``jmedbench``
entry-point group like any outside plugin. Loading this module never imports MONAI (seconds):
the specs are plain data, and the library is imported only when a model is built. Where MONAI
is not installed the hook registers nothing.
"""

from __future__ import annotations

import importlib.util

from jmedbench.hookspecs import hookimpl

LIBRARY = "monai"


def library_installed() -> bool:
    """Whether MONAI can be imported, found without importing it."""
    return importlib.util.find_spec(LIBRARY) is not None


@hookimpl
def jmedbench_models():
    if not library_installed():
        return []
    from jmedbench_monai.models import MODELS

    return list(MODELS)
