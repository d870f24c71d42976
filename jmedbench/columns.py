"""What tables show: the columns metric plugins declare (:attr:`MetricSpec.columns`), plus the
robustness summaries of the headline metric, which the core computes for whichever metric a
plugin marks as headline (:func:`jmedbench.engine.robustness.summarise`)."""

from __future__ import annotations

from jmedbench.registry import Registry
from jmedbench.specs import Column, MetricSpec

ROBUSTNESS_RUN_POSITION = 1000  # `jmedbench run` lists robustness summaries after the metrics


def headline_title(headline: MetricSpec) -> str:
    """The headline metric's own column title (its name when it declares none)."""
    return next((c.title for c in headline.columns if c.key == headline.name), headline.name)


def robustness_columns(headline: MetricSpec) -> list[Column]:
    name, title = headline.name, headline_title(headline)
    return [Column(f"mpc_{name}", "mPC", 4, headline.higher_is_better,
                   f"mPC (mean {title} under corruption)",
                   {"leaderboard": 50, "run": ROBUSTNESS_RUN_POSITION, "compare": 30}),
            Column(f"rpc_{name}", "rPC", 4, headline.higher_is_better,
                   f"rPC (mPC / clean {title})",
                   {"leaderboard": 60, "run": ROBUSTNESS_RUN_POSITION + 1, "compare": 40})]


def table_columns(registry: Registry, table: str) -> list[Column]:
    """The columns of ``table`` (see :class:`jmedbench.specs.Column`), in their order."""
    declared = [c for m in registry.specs("metrics") for c in m.columns]
    every = declared + robustness_columns(registry.flagged("metrics", "headline"))
    return sorted((c for c in every if table in c.shown), key=lambda c: c.shown[table])
