"""``jmedbench tune``: an Optuna study over the model's and strategy's search spaces."""

from __future__ import annotations

from rich.table import Table

from jmedbench.cli.common import (add_execution_options, add_json_option, console, err_console,
                                  execution_overrides, fmt, print_json)
from jmedbench.config import build_config
from jmedbench.engine.progress import RichReporter
from jmedbench.engine.tune import run_study
from jmedbench.registry import get_registry


def register(sub) -> None:
    p = sub.add_parser("tune", help="tune hyper-parameters with Optuna (several workers may "
                       "share one --storage)")
    p.add_argument("--model", required=True)
    p.add_argument("--strategy", help="strategy name or a '+' combination (default: the "
                                      "profile's, baseline)")
    p.add_argument("--dataset")
    p.add_argument("--profile", default="quick")
    p.add_argument("--config", metavar="FILE.toml")
    p.add_argument("--seed", type=int)
    add_execution_options(p)
    p.add_argument("--trials", type=int, default=10, help="total trials over all workers")
    p.add_argument("--storage", metavar="URL", help="journal:PATH, sqlite:///PATH or "
                   "postgresql://user:pass@host/db (default: in memory, one process)")
    p.add_argument("--study", help="study name (default model-strategy-dataset-profile)")
    p.add_argument("--eval-every", type=int, help="steps between validation reports (pruning)")
    add_json_option(p)
    p.set_defaults(func=cmd_tune)


def cmd_tune(args) -> int:
    cfg = build_config(args.profile, args.config, {"model": args.model, "strategy": args.strategy,
                                                   "dataset": args.dataset, "seed": args.seed,
                                                   **execution_overrides(args)})
    reporter = RichReporter(err_console)
    try:
        result = run_study(get_registry(), cfg, args.trials, args.storage, args.study, reporter,
                           args.eval_every)
    finally:
        reporter.close()
    if args.json:
        print_json({"study": result.study_name, "best_value": result.best_value,
                    "best_params": result.best_params, "trials": result.trials})
        return 0
    table = Table(title=f"study {result.study_name}: best validation Dice "
                        f"{fmt(result.best_value)}")
    table.add_column("parameter")
    table.add_column("best value")
    for k, v in result.best_params.items():
        table.add_row(k, fmt(v, 6))
    console.print(table)
    console.print("trials: " + ", ".join(f"{k} {v}" for k, v in result.trials.items()))
    return 0
