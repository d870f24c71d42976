"""The plugin manager: loads every plugin of the ``jmedbench`` entry-point group, collects their
specs and answers lookups by name, with wildcards and "did you mean".

A plugin that fails to import, returns a bad spec or clashes with another plugin's name is
recorded in :attr:`Registry.problems` (shown by ``jmedbench plugins``); the other plugins keep
working.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.metadata as md
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Iterable

import pluggy

from jmedbench import hookspecs
from jmedbench.errors import PluginError, UnknownNameError, UserError
from jmedbench.specs import (BackendSpec, CorruptionSpec, DatasetSpec, MetricSpec, ModelSpec,
                             StrategySpec)

ENTRY_POINT_GROUP = "jmedbench"

KINDS: dict[str, tuple[str, type]] = {
    # kind: (hook name, spec class)
    "models": ("jmedbench_models", ModelSpec),
    "datasets": ("jmedbench_datasets", DatasetSpec),
    "strategies": ("jmedbench_strategies", StrategySpec),
    "metrics": ("jmedbench_metrics", MetricSpec),
    "corruptions": ("jmedbench_corruptions", CorruptionSpec),
    "backends": ("jmedbench_backends", BackendSpec),
}
SINGULAR = {"models": "model", "datasets": "dataset", "strategies": "strategy",
            "metrics": "metric", "corruptions": "corruption", "backends": "backend"}


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin: where it came from and what it registered."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    status: str = "ok"  # ok | failed
    error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Registered:
    spec: Any
    plugin: str


class Registry:
    """All specs of all plugins, by kind and name."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.problems: list[str] = []
        self._entries: dict[str, dict[tuple, Registered]] = {kind: {} for kind in KINDS}
        self._duplicates: dict[tuple[str, tuple], list[str]] = {}

    # -- loading -----------------------------------------------------------------------------
    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> "Registry":
        seen: set[str] = set()
        for ep in sorted(md.entry_points(group=group), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            if ep.name in seen:  # the same distribution found twice on sys.path
                continue
            seen.add(ep.name)
            info = PluginInfo(ep.name, ep.value, dist.name if dist else None,
                              dist.version if dist else None)
            self.plugins[ep.name] = info
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must never break the others
                info.status, info.error = "failed", f"import failed: {type(exc).__name__}: {exc}"
                self.problems.append(f"plugin '{ep.name}' ({ep.value}): {info.error}")
                continue
            self.register(module, ep.name, info)
        return self

    def register(self, plugin: Any, name: str, info: PluginInfo | None = None) -> None:
        """Register one plugin object or module and collect its specs."""
        if info is None:
            info = PluginInfo(name, getattr(plugin, "__name__", repr(plugin)), None, None)
            self.plugins[name] = info
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            info.status, info.error = "failed", f"invalid hook: {exc}"
            self.problems.append(f"plugin '{name}': {info.error}")
            return
        for kind, (hook_name, spec_cls) in KINDS.items():
            impl = getattr(plugin, hook_name, None)
            if impl is None:
                continue
            try:
                specs = list(impl() or [])
            except Exception as exc:
                info.status = "failed"
                info.error = f"{hook_name}() raised {type(exc).__name__}: {exc}"
                self.problems.append(f"plugin '{name}': {info.error}")
                continue
            info.counts[kind] = 0
            for spec in specs:
                if not isinstance(spec, spec_cls):
                    self.problems.append(f"plugin '{name}': {hook_name}() returned "
                                         f"{type(spec).__name__}, expected {spec_cls.__name__}")
                    continue
                self._add(kind, spec, name)
                info.counts[kind] += 1

    def _add(self, kind: str, spec: Any, plugin: str) -> None:
        key = (spec.name, getattr(spec, "backend", None))
        table = self._entries[kind]
        if key in table:
            owners = self._duplicates.setdefault((kind, key), [table[key].plugin])
            owners.append(plugin)
            backend = f" (backend {key[1]})" if key[1] not in (None, "torch") else ""
            self.problems.append(f"duplicate {SINGULAR[kind]} name '{spec.name}'{backend}: "
                                 f"registered by plugins {' and '.join(repr(o) for o in owners)}")
            return
        table[key] = Registered(spec, plugin)

    # -- lookups -----------------------------------------------------------------------------
    def names(self, kind: str, pattern: str | None = None) -> list[str]:
        names = sorted({key[0] for key in self._entries[kind]})
        if pattern:
            names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        return names

    def specs(self, kind: str, pattern: str | None = None) -> list[Any]:
        wanted = set(self.names(kind, pattern))
        rows = [r.spec for key, r in sorted(self._entries[kind].items(), key=lambda kv: (kv[0][0], str(kv[0][1]))) if key[0] in wanted]
        return rows

    def owner(self, kind: str, name: str, backend: str | None = None) -> str:
        key = (name, (backend or "torch") if kind == "models" else None)
        return self._entries[kind][key].plugin

    def get(self, kind: str, name: str, backend: str = "torch") -> Any:
        key = (name, backend if kind == "models" else None)
        if (kind, key) in self._duplicates:
            owners = self._duplicates[(kind, key)]
            raise UserError(f"{SINGULAR[kind]} '{name}' is registered by several plugins "
                            f"({', '.join(owners)}): uninstall one of them")
        if key in self._entries[kind]:
            return self._entries[kind][key].spec
        names = self.names(kind)
        if kind == "models" and name in names:
            backends = sorted(k[1] for k in self._entries[kind] if k[0] == name)
            raise UserError(f"model '{name}' has no {backend} backend (available: "
                            f"{', '.join(backends)})")
        raise UnknownNameError(SINGULAR[kind], name, suggest(name, names), names)

    def model(self, name: str, backend: str = "torch") -> ModelSpec:
        return self.get("models", name, backend)

    def dataset(self, name: str) -> DatasetSpec:
        return self.get("datasets", name)

    def metric(self, name: str) -> MetricSpec:
        return self.get("metrics", name)

    def corruption(self, name: str) -> CorruptionSpec:
        return self.get("corruptions", name)

    def strategy(self, name: str) -> StrategySpec:
        return self.get("strategies", name)

    def flagged(self, kind: str, flag: str) -> Any:
        """The one spec of ``kind`` whose ``flag`` is set (``MetricSpec.headline``,
        ``ModelSpec.reference``, ...): what the core needs a plugin to declare. No such spec,
        or two names that set it, is one UserError line."""
        hits = [s for s in self.specs(kind) if getattr(s, flag)]
        names = sorted({s.name for s in hits})
        if len(names) != 1:
            raise UserError(f"exactly one installed {SINGULAR[kind]} must set '{flag}' "
                            f"(found {', '.join(names) or 'none'}; see jmedbench plugins)")
        return hits[0]

    def backends(self, model_name: str) -> list[str]:
        return sorted(k[1] for k in self._entries["models"] if k[0] == model_name)

    def notify_run_finished(self, record: dict) -> list[str]:
        """Call every ``jmedbench_run_finished`` hook; return the warnings of those that failed."""
        warnings = []
        for impl in self.pm.hook.jmedbench_run_finished.get_hookimpls():
            try:
                impl.function(record=record)
            except Exception as exc:
                warnings.append(f"plugin '{impl.plugin_name}' run_finished hook failed: {exc}")
        return warnings


def specs_in_package(package: str, attribute: str) -> list[Any]:
    """For plugin packages with one module per family: the specs that every module of
    ``package`` (those not starting with '_', in name order) lists in ``attribute``, so that a
    new family is one new file."""
    specs: list[Any] = []
    for info in sorted(pkgutil.iter_modules(importlib.import_module(package).__path__),
                       key=lambda m: m.name):
        if not info.name.startswith("_"):
            specs += getattr(importlib.import_module(f"{package}.{info.name}"), attribute, [])
    return specs


def suggest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Closest names, for "did you mean". Case-insensitive, tolerant of one or two typos."""
    candidates = list(candidates)
    lower = {c.lower(): c for c in candidates}
    hits = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.6)
    return [lower[h] for h in hits]


_DEFAULT: Registry | None = None


def get_registry(refresh: bool = False) -> Registry:
    """The process-wide registry of installed plugins, loaded once."""
    global _DEFAULT
    if _DEFAULT is None or refresh:
        _DEFAULT = Registry().load_entry_points()
    return _DEFAULT


def check_spec(spec: Any) -> None:
    """Raise :class:`PluginError` if a spec is malformed (used by jmedbench.testing)."""
    if not getattr(spec, "name", "") or any(c.isspace() for c in spec.name):
        raise PluginError(f"spec name {spec.name!r} must be a non-empty word")
