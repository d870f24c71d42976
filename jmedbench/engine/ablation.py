"""The SAS ablation: every subset of {ssl, stn, aug} (2^3 = 8 strategies, the empty set being
``baseline``) trained with the same budget on the same seeds, each run stored like any other,
then summarised per strategy (mean and 95% confidence interval over seeds) and per component
(its main effect: the mean over the four strategies with it minus the mean over the four
without, per seed, then mean and CI over seeds, as in a 2^3 factorial design).

The strategy parts are looked up by name through the registry: this module knows no plugin.
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
from jmedbench.config import RunConfig
from jmedbench.engine.progress import Reporter
from jmedbench.engine.run import execute, validate
from jmedbench.errors import UserError
from jmedbench.registry import Registry
from jmedbench.store import Store

COMPONENTS = ("ssl", "stn", "aug")  # the paper's SAS, in the order sas composes them
NEEDS_ENCODER = ("ssl",)
METRICS = ("dice", "shift_dice", "bmd_mae")
"""Clean Dice (test split), cross-site Dice (the ``shift`` split) and BMD error (present when a
density metric plugin registers ``bmd_mae``)."""


def ablation_strategies() -> list[str]:
    """The 8 subsets of COMPONENTS as strategy names, smallest first: baseline, ssl, stn, aug,
    ssl+stn, ssl+aug, stn+aug, ssl+stn+aug."""
    names = ["baseline"]
    for size in range(1, len(COMPONENTS) + 1):
        names += ["+".join(c) for c in combinations(COMPONENTS, size)]
    return names


def components_of(strategy: str) -> tuple[str, ...]:
    return () if strategy == "baseline" else tuple(strategy.split("+"))


def mean_ci(values: list[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean and the half-width of the two-sided t-interval, mean +- t_{n-1} * s / sqrt(n).
    NaN values are dropped and counted; with fewer than two values the interval is NaN."""
    from scipy import stats

    clean = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(clean)
    out: dict[str, Any] = {"mean": float("nan"), "ci95": float("nan"), "n": n,
                           "missing": len(values) - n, "values": clean}
    if n == 0:
        return out
    out["mean"] = float(np.mean(clean))
    if n >= 2:
        sem = float(np.std(clean, ddof=1)) / math.sqrt(n)
        out["ci95"] = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sem)
    return out


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


def check_model(registry: Registry, cfg: RunConfig) -> None:
    spec = registry.model(cfg.model, cfg.backend)
    if not spec.has_encoder:
        compatible = sorted({s.name for s in registry.specs("models") if s.has_encoder})
        raise UserError(f"ablation: model '{cfg.model}' exposes no encoder, so the "
                        f"{'/'.join(NEEDS_ENCODER)} strategies cannot run on it. Models with an "
                        f"encoder: {', '.join(compatible) or 'none installed'}")
    missing = [c for c in COMPONENTS if c not in registry.names("strategies")]
    if missing:
        raise UserError(f"ablation: strategy part(s) {', '.join(missing)} not installed "
                        f"(jmedbench list strategies)")


def run_ablation(registry: Registry, base: RunConfig, seeds: list[int], store: Store,
                 reporter: Reporter | None = None, resume: bool = False,
                 on_run: Callable[[str, int, str], None] | None = None) -> AblationResult:
    """Train and score the 8 strategies x ``seeds`` (each through :func:`execute`, so each
    lands in the store), then summarise and store the summary as a record of kind
    ``ablation``. ``on_run(strategy, seed, status)`` is called after each run."""
    if not seeds:
        raise UserError("ablation: --seeds needs at least one seed")
    reporter = reporter or Reporter()
    check_model(registry, base)
    plan: list[RunConfig] = []
    for strategy in ablation_strategies():
        for seed in seeds:
            cfg = copy.deepcopy(base)
            cfg.strategy, cfg.seed = strategy, seed
            validate(registry, cfg)  # every mistake before the first run starts
            plan.append(cfg)

    values: dict[str, dict[str, list[float]]] = {s: {m: [] for m in METRICS}
                                                 for s in ablation_strategies()}
    per_seed: dict[tuple[str, int], dict[str, float]] = {}
    run_ids: dict[str, list[str]] = {s: [] for s in ablation_strategies()}
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
            except Exception as exc:  # one failed run must not lose the other 8 x seeds - 1
                failures.append({"strategy": cfg.strategy, "seed": cfg.seed,
                                 "error": f"{type(exc).__name__}: {exc}"})
                if on_run:
                    on_run(cfg.strategy, cfg.seed, "failed")
                continue
        run_ids[cfg.strategy].append(run_id)
        seen_metrics |= {m for m in METRICS if m in metrics}
        per_seed[(cfg.strategy, cfg.seed)] = {m: _num(metrics.get(m)) for m in METRICS}
        for m in METRICS:
            values[cfg.strategy][m].append(_num(metrics.get(m)))
        if on_run:
            on_run(cfg.strategy, cfg.seed, status)

    rows = []
    for strategy in ablation_strategies():
        row: dict[str, Any] = {"strategy": strategy, "components": list(components_of(strategy)),
                               "runs": run_ids[strategy]}
        for m in METRICS:
            row[m] = mean_ci(values[strategy][m])
        rows.append(row)
    result = AblationResult(model=base.model, profile=base.profile, dataset=base.dataset,
                            seeds=list(seeds), metrics=list(METRICS), rows=rows,
                            effects=main_effects(per_seed, seeds), failures=failures,
                            missing_metrics=[m for m in METRICS if m not in seen_metrics])
    result.ablation_id = store_summary(registry, store, base, result)
    return result


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def main_effects(per_seed: dict[tuple[str, int], dict[str, float]], seeds: list[int]
                 ) -> dict[str, dict[str, Any]]:
    """For each component and metric: per seed, mean over strategies containing the component
    minus mean over those without (only seeds where all 8 runs have the metric), then mean and
    CI over seeds. Positive = the component raises the metric."""
    effects: dict[str, dict[str, Any]] = {}
    strategies = ablation_strategies()
    for component in COMPONENTS:
        effects[component] = {}
        for m in METRICS:
            diffs = []
            for seed in seeds:
                cells = [per_seed.get((s, seed), {}).get(m, float("nan")) for s in strategies]
                if any(math.isnan(c) for c in cells):
                    continue
                with_c = [c for s, c in zip(strategies, cells) if component in components_of(s)]
                without = [c for s, c in zip(strategies, cells)
                           if component not in components_of(s)]
                diffs.append(float(np.mean(with_c) - np.mean(without)))
            effects[component][m] = mean_ci(diffs)
    return effects


def store_summary(registry: Registry, store: Store, base: RunConfig,
                  result: AblationResult) -> str:
    """The summary as one record of kind ``ablation`` (its runs are ordinary ``run`` records)."""
    config = base.to_dict()
    config.update({"strategy": "ablation", "seed": None, "seeds": result.seeds,
                   "strategies": ablation_strategies()})
    ablation_id = store.begin_run(config, provenance.collect(registry), kind="ablation")
    flat = {f"{row['strategy']}.{m}": row[m]["mean"] for row in result.rows for m in METRICS}
    store.finish_run(ablation_id, metrics=flat, timings={}, details=result.to_dict(),
                     image_rows=[])
    return ablation_id
