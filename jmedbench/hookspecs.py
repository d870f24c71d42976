"""The whole plugin contract: every hook a jmedbench plugin may implement.

A plugin is a module (or object) with functions marked ``@hookimpl`` and is announced through
the ``jmedbench`` entry-point group in its distribution's metadata::

    [project.entry-points.jmedbench]
    my_models = "my_package.plugin"

Each registration hook returns a list of specs (see :mod:`jmedbench.specs`). Names must be
unique per kind (per kind and backend for models); a clash is reported naming both plugins.
Hook implementations whose names do not match a spec here are caught by
``check_pending()`` when the registry loads, so a misspelled hook never goes silently unused.
"""

from __future__ import annotations

import pluggy

PROJECT = "jmedbench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def jmedbench_models() -> list:
    """Return a list of :class:`~jmedbench.specs.ModelSpec`: architectures this plugin offers."""


@hookspec
def jmedbench_datasets() -> list:
    """Return a list of :class:`~jmedbench.specs.DatasetSpec`."""


@hookspec
def jmedbench_strategies() -> list:
    """Return a list of :class:`~jmedbench.specs.StrategySpec`: ways to train a model."""


@hookspec
def jmedbench_metrics() -> list:
    """Return a list of :class:`~jmedbench.specs.MetricSpec` (per image or per dataset)."""


@hookspec
def jmedbench_corruptions() -> list:
    """Return a list of :class:`~jmedbench.specs.CorruptionSpec` for the robustness suite."""


@hookspec
def jmedbench_backends() -> list:
    """Return a list of :class:`~jmedbench.specs.BackendSpec`: frameworks models can run in
    (``--backend NAME``). A model is offered in a backend by a ModelSpec with that ``backend``.
    Must be cheap: return the spec even when the framework is not installed (its factory then
    raises a UserError naming what to install), and import the framework only in the factory.
    """


@hookspec
def jmedbench_run_finished(record: dict) -> None:
    """Called once a run has been stored, with its record (as ``jmedbench show --json``).

    For exporters and notifiers; return values are ignored and exceptions are reported as
    warnings, never failing the run.
    """
