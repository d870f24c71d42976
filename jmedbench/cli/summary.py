"""The short summary ``jmedbench run`` prints: the metrics the metric plugins put in the
``run`` table (:mod:`jmedbench.columns`), grouped as a reader compares them (segmentation,
cross-site, BMD, robustness, then each ``--eval-dataset``); everything else stays for
``jmedbench show`` and ``--json``."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table

from jmedbench.cli.common import fmt
from jmedbench.columns import table_columns
from jmedbench.registry import Registry

GROUPS = ("segmentation", "cross-site", "BMD", "robustness")


def metric_group(key: str) -> str:
    """The group of a metric key of the run's own splits."""
    if key.startswith(("mpc_", "rpc_", "mce")):
        return "robustness"
    if "bmd" in key:
        return "BMD"
    if key.startswith("shift_"):
        return "cross-site"
    return "segmentation"


def summary_rows(registry: Registry, metrics: dict[str, Any],
                 eval_datasets: dict[str, str] | None = None) -> list[tuple[str, str, Any]]:
    """(group, title, value) of every ``run`` column the run has, in group order."""
    columns = table_columns(registry, "run")
    rows = [(metric_group(c.key), c.title, metrics[c.key]) for c in columns if c.key in metrics]
    rows.sort(key=lambda r: GROUPS.index(r[0]))
    for key, name in (eval_datasets or {}).items():
        for c in columns:
            if not c.key.startswith(("shift_", "mpc_", "rpc_")) and f"{key}_{c.key}" in metrics:
                rows.append((f"on {name}", c.title, metrics[f"{key}_{c.key}"]))
    return rows


def summary_table(registry: Registry, title: str, metrics: dict[str, Any],
                  eval_datasets: dict[str, str] | None = None) -> tuple[Table, int]:
    """The grouped table and how many stored metrics it leaves out."""
    table = Table(title=title, box=box.SIMPLE_HEAD)
    table.add_column("")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = summary_rows(registry, metrics, eval_datasets)
    previous = None
    for group, name, value in rows:
        table.add_row(group if group != previous else "", name, fmt(value))
        previous = group
    shown = len(rows)
    stored = sum(1 for k in metrics if not k.endswith("_undefined"))
    return table, stored - shown
