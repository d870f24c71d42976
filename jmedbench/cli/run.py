"""``jmedbench run`` (train, score, store one configuration) and ``jmedbench show RUN_ID``."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from jmedbench.cli.common import (add_execution_options, add_json_option, add_store_option,
                                  comma_list, console, err_console, execution_overrides, fmt,
                                  print_json)
from jmedbench.cli.summary import summary_table
from jmedbench.config import build_config
from jmedbench.engine.progress import RichReporter
from jmedbench.engine.run import execute
from jmedbench.registry import get_registry
from jmedbench.store import Store
from jmedbench.weights import add_weights_option

def register(sub) -> None:
    p = sub.add_parser("run", help="train one model with one strategy, score it, store it")
    p.add_argument("--model", help="model name (jmedbench list models)")
    p.add_argument("--strategy", help="strategy name or a '+' combination, e.g. ssl+stn")
    p.add_argument("--dataset", help="dataset name, e.g. phantom or nifti:/path/to/dir")
    p.add_argument("--profile", default="default",
                   help="quick | default | full, or any profile in jmedbench/configs")
    p.add_argument("--seed", type=int)
    p.add_argument("--steps", type=int, help="training steps (overrides the profile)")
    p.add_argument("--backend", help="torch (default) or jittor")
    add_execution_options(p)
    p.add_argument("--config", metavar="FILE.toml", help="a TOML file merged over the profile")
    p.add_argument("--robustness", nargs="?", const="all", metavar="FAMILY,...",
                   help="also score under corruptions (all families, or a comma list)")
    add_weights_option(p)
    p.add_argument("--no-save-weights", action="store_true",
                   help="do not keep the trained model (by default it is saved beside the "
                        "store, for jmedbench predict and export)")
    p.add_argument("--artifacts", metavar="DIR",
                   help="folder for the run's files (default beside an SQLite store; needed "
                        "with a database server store, or $JMEDBENCH_ARTIFACTS)")
    p.add_argument("--eval-dataset", metavar="NAME,...",
                   help="after training, also score these datasets (e.g. example or "
                        "nifti:DIR, your own scans); their metrics are prefixed with the name")
    p.add_argument("--matrix-key", help=argparse.SUPPRESS)  # set by `jmedbench bench`
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("show", help="show a stored run")
    p.add_argument("run_id", help="run id (a unique prefix is enough)")
    p.add_argument("--images", action="store_true", help="include per-image metrics")
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(func=cmd_show)


def cmd_run(args) -> int:
    robustness = None
    if args.robustness:
        robustness = [] if args.robustness == "all" else args.robustness.split(",")
    cfg = build_config(args.profile, args.config, {
        "model": args.model, "strategy": args.strategy, "dataset": args.dataset,
        "seed": args.seed, "backend": args.backend, "weights": args.weights,
        "train.steps": args.steps,
        "eval.robustness": (robustness or ["all"]) if robustness is not None else None,
        "eval.datasets": comma_list(args.eval_dataset, "--eval-dataset"),
        **execution_overrides(args),
    })
    registry = get_registry()
    store = Store(args.store, artifacts=args.artifacts)
    reporter = RichReporter(err_console)
    try:
        result = execute(registry, cfg, store, reporter, matrix_key=args.matrix_key,
                         save_weights=not args.no_save_weights)
    finally:
        reporter.close()
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    weights = (store.get_run(result.run_id).get("artifacts") or {}).get("weights")
    if args.json:
        print_json({"run_id": result.run_id, "store": str(store.path), **result.metrics,
                    "timings": result.timings, "weights": weights})
        return 0
    title = (f"run {result.run_id}\n{cfg.model} / {cfg.strategy} / {cfg.dataset} "
             f"({cfg.profile})")
    table, hidden = summary_table(registry, title, result.metrics,
                                  result.details.get("eval_datasets"))
    console.print(table)
    if hidden:
        console.print(f"{hidden} more metrics: jmedbench show {result.run_id} (or --json)",
                      highlight=False)
    if weights:
        console.print(f"weights: {weights}", highlight=False)
    console.print(f"stored in {store.path}; timings (s): " +
                  ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items()), highlight=False)
    return 0


def cmd_show(args) -> int:
    store = Store(args.store)
    record: dict[str, Any] = store.get_run(args.run_id)
    if args.images:
        record["images"] = store.image_metrics(record["run_id"])
    if args.json:
        print_json(record)
        return 0
    table = Table(title=f"run {record['run_id']} [{record['status']}]", show_header=False)
    table.add_column("key")
    table.add_column("value", overflow="fold")
    for key in ("model", "strategy", "dataset", "profile", "seed", "backend", "status"):
        table.add_row(key, str(record[key]))
    prov = record["provenance"] or {}
    execution = prov.get("execution") or {"device": "cpu", "precision": "fp32"}
    table.add_row("device", f"{execution['device']} {execution['precision']}"
                            f"{' channels_last' if execution.get('channels_last') else ''}"
                            f" ({execution.get('accelerator', prov.get('cpu'))})")
    table.add_row("git commit", str(prov.get("git_commit")))
    table.add_row("versions", ", ".join(f"{k} {v}" for k, v in prov.get("versions", {}).items()))
    table.add_row("host", f"{prov.get('host')} ({prov.get('cpu')})")
    if record["timings"]:
        table.add_row("timings (s)", ", ".join(f"{k} {v:.1f}" for k, v in record["timings"].items()))
    for name, path in (record.get("artifacts") or {}).items():
        table.add_row(name, str(path))
    if record["error"]:
        table.add_row("error", record["error"].splitlines()[0])
    for key, value in sorted((record["metrics"] or {}).items()):
        if not key.endswith("_undefined"):
            table.add_row(key, fmt(value))
    console.print(table)
    return 0
