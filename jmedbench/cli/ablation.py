"""``jmedbench ablation --model M``: every combination of the declared composite's components
(the 8 of {ssl, stn, aug}) over seeds, scored on the ``summary`` columns (clean Dice,
cross-site Dice, BMD error), with 95% confidence intervals."""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from jmedbench.cli.common import (add_json_option, add_store_option, console, err_console, fmt,
                                  print_json)
from jmedbench.config import build_config
from jmedbench.engine.ablation import AblationResult, Design, design, run_ablation
from jmedbench.engine.progress import RichReporter
from jmedbench.errors import UserError
from jmedbench.registry import get_registry
from jmedbench.store import Store


def register(sub) -> None:
    p = sub.add_parser("ablation", help="the 8 combinations of ssl, stn and aug over seeds, "
                       "with 95%% confidence intervals")
    p.add_argument("--model", required=True, help="model name (needs an encoder for ssl)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--profile", default="default",
                   help="quick | default | full (8 x seeds runs of this profile each)")
    p.add_argument("--dataset", help="dataset name (default: the profile's)")
    p.add_argument("--steps", type=int, help="training steps per run (overrides the profile)")
    p.add_argument("--config", metavar="FILE.toml", help="a TOML file merged over the profile")
    p.add_argument("--resume", action="store_true",
                   help="reuse completed runs of an identical config from the store")
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(func=cmd_ablation)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds '{text}': expected comma-separated integers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds '{text}': give at least one seed, each once")
    return seeds


def cmd_ablation(args) -> int:
    seeds = parse_seeds(args.seeds)
    cfg = build_config(args.profile, args.config, {
        "model": args.model, "dataset": args.dataset, "train.steps": args.steps})
    registry = get_registry()
    ablated = design(registry)
    store = Store(args.store)
    reporter = RichReporter(err_console)
    total = len(ablated.strategies()) * len(seeds)
    overall = reporter.progress.add_task("ablation runs", total=total, note="")

    def on_run(strategy: str, seed: int, status: str) -> None:
        reporter.progress.update(overall, advance=1, note=f"{strategy} seed {seed}: {status}")

    try:
        result = run_ablation(registry, cfg, seeds, store, reporter, resume=args.resume,
                              on_run=on_run)
    finally:
        reporter.close()
    for failure in result.failures:
        err_console.print(f"[yellow]warning:[/yellow] {failure['strategy']} seed "
                          f"{failure['seed']} failed: {failure['error']}", highlight=False)
    for metric in result.missing_metrics:
        err_console.print(f"[yellow]note:[/yellow] no run reported '{metric}' (is a density "
                          f"metric plugin installed?)", highlight=False)
    if args.json:
        print_json({"store": str(store.path), **result.to_dict()})
        return 0
    print_tables(result, ablated, store)
    return 0


def _cell(stat: dict[str, Any]) -> str:
    if stat["n"] == 0:
        return "-"
    if math.isnan(stat["ci95"]):
        return fmt(stat["mean"])
    return f"{fmt(stat['mean'])} ± {fmt(stat['ci95'])}"


def print_tables(result: AblationResult, ablated: Design, store: Store) -> None:
    title = (f"ablation {result.ablation_id}: {result.model} on {result.dataset} "
             f"({result.profile}), seeds {','.join(map(str, result.seeds))}")
    table = Table(title=title, caption="mean ± 95% CI half-width (t-distribution over seeds)")
    table.add_column("strategy")
    for c in ablated.factors:
        table.add_column(c, justify="center")
    for column in ablated.metrics:
        arrow = "↑" if column.higher_is_better else "↓"
        table.add_column(f"{column.key} {arrow}", justify="right")
    table.add_column("n", justify="right")
    everything = len(ablated.factors)
    for row in result.rows:
        marks = ["✓" if c in row["components"] else "" for c in ablated.factors]
        label = row["strategy"] + (f" ({ablated.composite})"
                                   if len(row["components"]) == everything else "")
        table.add_row(label, *marks, *[_cell(row[m]) for m in result.metrics],
                      str(len(row["runs"])))
    console.print(table)
    effects = Table(title="main effect of each component (with minus without, averaged over "
                          "the other two; positive raises the metric)")
    effects.add_column("component")
    for m in result.metrics:
        effects.add_column(m, justify="right")
    for c in ablated.factors:
        effects.add_row(c, *[_cell(result.effects[c][m]) for m in result.metrics])
    console.print(effects)
    console.print(f"stored in {store.path} (summary {result.ablation_id}; runs: jmedbench show "
                  f"RUN_ID)", highlight=False)
