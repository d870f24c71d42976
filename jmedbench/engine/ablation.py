"""An ablation of a composite strategy: every subset of its components (for the paper's SAS,
{ssl, stn, aug}: 2^3 = 8 strategies, the empty set being the reference strategy ``baseline``)
trained with the same budget on the same seeds, each run stored like any other, then
summarised per strategy (mean and 95% confidence interval over seeds) and per component (its
main effect: the mean over the strategies with it minus the mean over those without, per seed,
then mean and CI over seeds, as in a 2^k factorial design).

What is ablated is declared by the plugins, never named here: the composite is the strategy
whose spec sets ``ablation`` (its ``components`` are the factors), the empty set is the one
that sets ``reference``, and the metrics are the columns marked for the ``summary`` table.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Callable

import numpy as np

from jmedbench import provenance
from jmedbench.columns import table_columns
from jmedbench.config import RunConfig
from jmedbench.engine.progress import Reporter
from jmedbench.engine.run import execute, validate
from jmedbench.errors import UserError
from jmedbench.registry import Registry, get_registry
from jmedbench.specs import Column
from jmedbench.stats import mean_half_width
from jmedbench.store import Store


@dataclass(frozen=True)
class Design:
    """What an ablation takes apart, as the installed plugins declare it."""

    composite: str               # the ablated strategy (``sas``)
    factors: tuple[str, ...]     # its components, in the order it composes them
    reference: str               # the empty set (``baseline``)
    metrics: tuple[Column, ...]  # what is compared (clean, cross-site Dice, BMD error)

    @property
    def metric_names(self) -> list[str]:
        return [c.key for c in self.metrics]

    def strategies(self) -> list[str]:
        """Every subset of the factors as a strategy name, smallest first: the reference,
        then ``ssl``, ``stn``, ``aug``, ``ssl+stn``, ... ``ssl+stn+aug``."""
        names = [self.reference]
        for size in range(1, len(self.factors) + 1):
            names += ["+".join(c) for c in combinations(self.factors, size)]
        return names

    def components_of(self, strategy: str) -> tuple[str, ...]:
        return () if strategy == self.reference else tuple(strategy.split("+"))


def design(registry: Registry | None = None) -> Design:
    """The ablation the installed plugins (or ``registry``'s) declare."""
    registry = registry or get_registry()
    composite = registry.flagged("strategies", "ablation")
    if not composite.components:
        raise UserError(f"ablation: strategy '{composite.name}' sets 'ablation' but declares "
                        f"no components to take apart")
    return Design(composite.name, tuple(composite.components),
                  registry.flagged("strategies", "reference").name,
                  tuple(table_columns(registry, "summary")))


def ablation_strategies(registry: Registry | None = None) -> list[str]:
    """The strategies of the declared ablation (see :meth:`Design.strategies`)."""
    return design(registry).strategies()


def run_key(cfg: RunConfig) -> str:
    """Identifies one (config, seed) run of an ablation, so that ``--resume`` can reuse it."""
    digest = hashlib.sha1(json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode())
    return "ablation:" + digest.hexdigest()[:16]


@dataclass
class AblationResult:
    model: str
    profile: str
    dataset: str
    seeds: list[int]
    metrics: list[str]
    rows: list[dict[str, Any]]
    effects: dict[str, dict[str, Any]]
    failures: list[dict[str, Any]] = field(default_factory=list)
    missing_metrics: list[str] = field(default_factory=list)
    ablation_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ablation_id": self.ablation_id, "model": self.model, "profile": self.profile,
                "dataset": self.dataset, "seeds": self.seeds, "metrics": self.metrics,
                "rows": self.rows, "effects": self.effects, "failures": self.failures,
                "missing_metrics": self.missing_metrics}


def check_model(registry: Registry, cfg: RunConfig, plan: Design) -> None:
    spec = registry.model(cfg.model, cfg.backend)
    missing = [c for c in plan.factors if c not in registry.names("strategies")]
    if missing:
        raise UserError(f"ablation: strategy part(s) {', '.join(missing)} not installed "
                        f"(jmedbench list strategies)")
    need_encoder = [c for c in plan.factors if registry.strategy(c).needs_encoder]
    if need_encoder and not spec.has_encoder:
        compatible = sorted({s.name for s in registry.specs("models") if s.has_encoder})
        raise UserError(f"ablation: model '{cfg.model}' exposes no encoder, so the "
                        f"{'/'.join(need_encoder)} strategies cannot run on it. Models with an "
                        f"encoder: {', '.join(compatible) or 'none installed'}")


def run_ablation(registry: Registry, base: RunConfig, seeds: list[int], store: Store,
                 reporter: Reporter | None = None, resume: bool = False,
                 on_run: Callable[[str, int, str], None] | None = None) -> AblationResult:
    """Train and score the 2^k strategies x ``seeds`` (each through :func:`execute`, so each
    lands in the store), then summarise and store the summary as a record of kind
    ``ablation``. ``on_run(strategy, seed, status)`` is called after each run."""
    if not seeds:
        raise UserError("ablation: --seeds needs at least one seed")
    reporter = reporter or Reporter()
    ablated = design(registry)
    check_model(registry, base, ablated)
    strategies, metric_names = ablated.strategies(), ablated.metric_names
    plan: list[RunConfig] = []
    for strategy in strategies:
        for seed in seeds:
            cfg = copy.deepcopy(base)
            cfg.strategy, cfg.seed = strategy, seed
            validate(registry, cfg)  # every mistake before the first run starts
            plan.append(cfg)

    values: dict[str, dict[str, list[float]]] = {s: {m: [] for m in metric_names}
                                                 for s in strategies}
    per_seed: dict[tuple[str, int], dict[str, float]] = {}
    run_ids: dict[str, list[str]] = {s: [] for s in strategies}
    failures: list[dict[str, Any]] = []
    seen_metrics: set[str] = set()
    for cfg in plan:
        key = run_key(cfg)
        metrics = None
        if resume:
            done = store.runs(status="completed", matrix_key=key)
            if done:
                metrics, run_id, status = done[-1]["metrics"], done[-1]["run_id"], "reused"
        if metrics is None:
            try:
                result = execute(registry, cfg, store, reporter, matrix_key=key)
                metrics, run_id, status = result.metrics, result.run_id, "completed"
            except (KeyboardInterrupt, UserError):
                raise
            except Exception as exc:  # one failed run must not lose the others
                failures.append({"strategy": cfg.strategy, "seed": cfg.seed,
                                 "error": f"{type(exc).__name__}: {exc}"})
                if on_run:
                    on_run(cfg.strategy, cfg.seed, "failed")
                continue
        run_ids[cfg.strategy].append(run_id)
        seen_metrics |= {m for m in metric_names if m in metrics}
        per_seed[(cfg.strategy, cfg.seed)] = {m: _num(metrics.get(m)) for m in metric_names}
        for m in metric_names:
            values[cfg.strategy][m].append(_num(metrics.get(m)))
        if on_run:
            on_run(cfg.strategy, cfg.seed, status)

    rows = []
    for strategy in strategies:
        row: dict[str, Any] = {"strategy": strategy,
                               "components": list(ablated.components_of(strategy)),
                               "runs": run_ids[strategy]}
        for m in metric_names:
            row[m] = mean_half_width(values[strategy][m])
        rows.append(row)
    result = AblationResult(model=base.model, profile=base.profile, dataset=base.dataset,
                            seeds=list(seeds), metrics=metric_names, rows=rows,
                            effects=main_effects(per_seed, seeds, ablated), failures=failures,
                            missing_metrics=[m for m in metric_names if m not in seen_metrics])
    result.ablation_id = store_summary(registry, store, base, result, ablated)
    return result


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def main_effects(per_seed: dict[tuple[str, int], dict[str, float]], seeds: list[int],
                 ablated: Design | None = None) -> dict[str, dict[str, Any]]:
    """For each component and metric: per seed, mean over strategies containing the component
    minus mean over those without (only seeds where all 2^k runs have the metric), then mean
    and CI over seeds. Positive = the component raises the metric. ``ablated`` defaults to the
    installed plugins' :func:`design`."""
    ablated = ablated or design()
    effects: dict[str, dict[str, Any]] = {}
    strategies = ablated.strategies()
    for component in ablated.factors:
        effects[component] = {}
        for m in ablated.metric_names:
            diffs = []
            for seed in seeds:
                cells = [per_seed.get((s, seed), {}).get(m, float("nan")) for s in strategies]
                if any(math.isnan(c) for c in cells):
                    continue
                with_c = [c for s, c in zip(strategies, cells)
                          if component in ablated.components_of(s)]
                without = [c for s, c in zip(strategies, cells)
                           if component not in ablated.components_of(s)]
                diffs.append(float(np.mean(with_c) - np.mean(without)))
            effects[component][m] = mean_half_width(diffs)
    return effects


def store_summary(registry: Registry, store: Store, base: RunConfig,
                  result: AblationResult, ablated: Design) -> str:
    """The summary as one record of kind ``ablation`` (its runs are ordinary ``run`` records)."""
    config = base.to_dict()
    config.update({"strategy": "ablation", "seed": None, "seeds": result.seeds,
                   "strategies": ablated.strategies()})
    ablation_id = store.begin_run(config, provenance.collect(registry), kind="ablation")
    flat = {f"{row['strategy']}.{m}": row[m]["mean"] for row in result.rows
            for m in result.metrics}
    store.finish_run(ablation_id, metrics=flat, timings={}, details=result.to_dict(),
                     image_rows=[])
    return ablation_id
