"""Conformance checks for model plugins: what every architecture must do before it is benchmarked.

A plugin author calls one line::

    from jmedbench.testing import check_model
    report = check_model("my_unet")            # raises AssertionError on the first failure
    report = check_model("my_unet", learning=True)   # also trains briefly on the phantom

or, in a pytest file, subclasses :class:`ModelConformance` (smp style)::

    from jmedbench.testing import ModelConformance

    class TestMyModels(ModelConformance):
        model_names = ["my_unet", "my_fcn"]

which gives, per model, ``test_conformance`` (the fast checks, about a second at width 8) and
``test_learns_on_phantom`` (marked ``slow`` unless the class sets ``learning_is_slow = False``).

The checks, in order (names as in :data:`FAST_CHECKS` and :data:`LEARNING_CHECK`):

- ``spec``: name, family, description and citation non-empty; sizes and backend sane.
- ``build``: ``factory(in_channels=1, num_classes=3, **defaults, width=8)`` gives a module
  with trainable parameters (``width`` only where the factory accepts it, as the engine does).
- ``output``: logits (B, 3, H, W), float32, finite, for several allowed non-square sizes.
- ``backward``: in train mode at batch 2, Dice + cross-entropy gives a finite gradient to
  every trainable parameter; parameters that get no gradient at all are named (an unused
  parameter is a bug: it is saved, counted and never trained).
- ``eval``: in eval mode two forwards are equal, batch 1 works, an image's logits do not
  depend on the rest of its batch, and no buffer (BatchNorm statistics) changes.
- ``seeded_init``: the same ``torch.manual_seed`` gives identical weights, another seed
  different ones (a factory that reseeds the global generator would hide seeds).
- ``state_dict``: save to bytes, load into a fresh instance (strict), equal eval outputs.
- ``encode``: when the spec says ``has_encoder``, ``encode(x)`` is a finite (B, C, h, w) tensor.
- ``learning`` (``learning=True``): ~80 Adam steps of the engine's own training
  (:func:`jmedbench.engine.pipeline.train_model`, as ``jmedbench run`` trains) on the dataset
  the ``quick`` profile names (``[run] dataset``: the phantom), no strategy: the loss falls (mean of the last 10 steps at least
  3% below the mean of the first 10) and some test pixel is predicted as bone (class 1 or 2). The seed
  library this project replaces had models that silently predicted all background.

The global torch random state of the caller is restored afterwards. The learning check
trains on the threads a run would use (``JMEDBENCH_THREADS``, else every core this process may
use), whatever the caller set, and gives the caller's thread count back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch

from jmedbench.registry import Registry, get_registry
from jmedbench.testing.checks import (ALL_CHECKS, CHECK_FUNCTIONS, CHECK_WIDTH, FAST_CHECKS,
                                      LEARNING_CHECK, LEARNING_STEPS, CheckFailed, CheckContext,
                                      as_sizes, first_line, build, default_sizes,
                                      learning_image_size, model_kwargs, size_problem)

__all__ = ["ALL_CHECKS", "CHECK_WIDTH", "FAST_CHECKS", "LEARNING_CHECK", "LEARNING_STEPS",
           "CheckFailed", "CheckResult", "ConformanceReport", "ModelConformance", "build",
           "check_model", "default_sizes", "learning_image_size", "model_kwargs"]

@dataclass
class CheckResult:
    name: str
    passed: bool
    detail: str
    seconds: float


@dataclass
class ConformanceReport:
    """What :func:`check_model` found: one :class:`CheckResult` per check that ran."""

    model: str
    backend: str
    results: list[CheckResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # check -> why it did not run

    @property
    def passed(self) -> list[str]:
        return [r.name for r in self.results if r.passed]

    @property
    def failed(self) -> list[str]:
        return [r.name for r in self.results if not r.passed]

    @property
    def ok(self) -> bool:
        return not self.failed

    def result(self, name: str) -> CheckResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"check '{name}' did not run (ran: {', '.join(r.name for r in self.results)})")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "backend": self.backend, "ok": self.ok,
                "passed": self.passed, "failed": self.failed, "skipped": dict(self.skipped),
                "checks": [vars(r) for r in self.results]}

    def __str__(self) -> str:
        lines = [f"conformance of model '{self.model}' ({self.backend}): "
                 f"{len(self.passed)} passed, {len(self.failed)} failed"]
        for r in self.results:
            lines.append(f"  {'ok  ' if r.passed else 'FAIL'} {r.name:<12} {r.detail}")
        for name, why in self.skipped.items():
            lines.append(f"  skip {name:<12} {why}")
        return "\n".join(lines)


def check_model(name: str, *, sizes: Iterable[int | Sequence[int]] | None = None,
                learning: bool = False, backend: str = "torch",
                registry: Registry | None = None, width: int | None = CHECK_WIDTH,
                steps: int = LEARNING_STEPS, seed: int = 0,
                checks: Iterable[str] | None = None,
                raise_on_failure: bool = True) -> ConformanceReport:
    """Run the conformance checks on the registered model ``name``.

    Raises :class:`AssertionError` (:class:`CheckFailed`) naming the model, the check and the
    reason at the first failure; with ``raise_on_failure=False`` every check runs and the
    returned :class:`ConformanceReport` lists the failures. ``sizes`` are ints (square) or
    (H, W) pairs, each allowed by the spec (default :func:`default_sizes`). ``registry``
    defaults to the installed plugins; pass your own :class:`jmedbench.registry.Registry` to
    check a plugin object before it is installed. ``checks`` limits the run to some of
    :data:`ALL_CHECKS` (``spec`` always runs); ``learning=True`` adds the learning check.
    """
    registry = registry or get_registry()
    spec = registry.model(name, backend)  # unknown name -> UnknownNameError with suggestions
    wanted = list(FAST_CHECKS) + ([LEARNING_CHECK] if learning else [])
    if checks is not None:
        checks = list(checks)
        unknown = [c for c in checks if c not in ALL_CHECKS]
        if unknown:
            raise ValueError(f"unknown check(s) {unknown}; known: {', '.join(ALL_CHECKS)}")
        wanted = ["spec"] + [c for c in ALL_CHECKS if c in checks and c != "spec"]
    chosen = as_sizes(sizes) if sizes is not None else default_sizes(spec)
    for h, w in chosen:
        problem = size_problem(spec, h, w)
        if problem:
            raise ValueError(f"check_model('{name}', sizes=...): size {h}x{w}: {problem}")
    report = ConformanceReport(model=name, backend=backend)
    ctx = CheckContext(spec=spec, registry=registry, sizes=chosen, width=width, seed=seed,
                   steps=steps)
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state as it was
        for check in wanted:
            if check != "spec" and backend != "torch":
                report.skipped[check] = f"tensor checks need the torch backend, not {backend}"
                continue
            if check == "encode" and not spec.has_encoder:
                report.skipped[check] = "the spec says has_encoder=False"
                continue
            if check not in ("spec", "build") and "build" in report.failed:
                report.skipped[check] = "the model could not be built"
                continue
            t0 = time.perf_counter()
            try:
                detail = CHECK_FUNCTIONS[check](ctx)
            except CheckFailed as exc:
                reason = str(exc).removeprefix(f"{check}: ")
                report.results.append(CheckResult(check, False, reason,
                                                  time.perf_counter() - t0))
                if raise_on_failure:
                    passed = ", ".join(report.passed) or "none"
                    raise CheckFailed(f"model '{name}' failed conformance check '{check}': "
                                      f"{reason} (passed before it: {passed})") from exc.__cause__
                continue
            except Exception as exc:  # a crash inside a check is a failure of that check
                message = f"{check}: raised {type(exc).__name__}: {first_line(exc)}"
                report.results.append(CheckResult(check, False, message,
                                                  time.perf_counter() - t0))
                if raise_on_failure:
                    raise CheckFailed(f"model '{name}' failed conformance check '{check}': "
                                      f"{message}") from exc
                continue
            report.results.append(CheckResult(check, True, detail, time.perf_counter() - t0))
    return report


# -- pytest form ------------------------------------------------------------------------------
def _model_params(names: Iterable[str], slow: bool) -> list[Any]:
    import pytest  # only reached inside a pytest run (pytest is a dev dependency)
    marks = (pytest.mark.slow,) if slow else ()
    return [pytest.param(name, marks=marks, id=name) for name in names]


class ModelConformance:
    """Subclass in a pytest file and set ``model_names`` (a list, or a wildcard pattern string
    such as ``"my_*"``); every test below then runs once per model::

        class TestMyModels(ModelConformance):
            model_names = ["my_unet", "my_fcn"]

    Override :meth:`make_registry` to check plugins that are not installed (register them into
    a fresh :class:`jmedbench.registry.Registry`), and ``learning_steps`` / ``sizes`` / ``width``
    to tune the checks. ``learning_is_slow`` (default True) marks the learning test ``slow``
    (``pytest -m slow`` runs it); set it False to run it with the default tests.
    """

    model_names: Sequence[str] | str = ()
    backend: str = "torch"
    sizes: Sequence[int | Sequence[int]] | None = None
    width: int | None = CHECK_WIDTH
    learning_steps: int = LEARNING_STEPS
    learning_is_slow: bool = True

    def make_registry(self) -> Registry:
        return get_registry()

    def pytest_generate_tests(self, metafunc) -> None:
        # pytest calls this hook on test classes too: it parametrises `model_name`.
        if "model_name" in metafunc.fixturenames:
            names = self.model_names
            if isinstance(names, str):
                names = self.make_registry().names("models", names)
            slow = (metafunc.function.__name__ == "test_learns_on_phantom"
                    and self.learning_is_slow)
            metafunc.parametrize("model_name", _model_params(names, slow))

    def _check(self, model_name: str, **kwargs: Any) -> ConformanceReport:
        return check_model(model_name, sizes=self.sizes, backend=self.backend,
                           registry=self.make_registry(), width=self.width, **kwargs)

    def test_conformance(self, model_name: str) -> None:
        """spec, build, output sizes, backward, eval, seeded init, state dict, encode."""
        self._check(model_name)

    def test_learns_on_phantom(self, model_name: str) -> None:
        """The loss falls and bone is predicted after a short training on the phantom."""
        self._check(model_name, learning=True, checks=["learning"], steps=self.learning_steps)
