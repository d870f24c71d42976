"""``jmedbench bench``: run a matrix of models x strategies x datasets x seeds, resumable."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from jmedbench.cli.common import add_json_option, add_store_option, console, err_console, fmt, print_json
from jmedbench.columns import table_columns
from jmedbench.config import build_config
from jmedbench.engine.bench import expand_matrix, run_matrix
from jmedbench.errors import UserError
from jmedbench.registry import get_registry
from jmedbench.store import Store


def register(sub) -> None:
    p = sub.add_parser("bench", help="run a resumable matrix of runs (models x strategies x "
                       "datasets x seeds)")
    p.add_argument("--models", required=True, help="names or wildcards, comma separated: "
                   "'unet*,segnet' or '*'")
    p.add_argument("--strategies", help="comma separated, e.g. baseline,sas (default: the "
                                        "profile's strategy, baseline)")
    p.add_argument("--datasets", help="comma separated (default: the profile's dataset, "
                                      "phantom)")
    p.add_argument("--seeds", default="0", help="comma separated integers")
    p.add_argument("--profile", default="default")
    p.add_argument("--backend", default="torch")
    p.add_argument("--config", metavar="FILE.toml", help="merged over the profile for every run")
    p.add_argument("--robustness", nargs="?", const="all", metavar="FAMILY,...")
    p.add_argument("--workers", type=int, default=1, help="runs in parallel (threads are split)")
    p.add_argument("--retry-failed", action="store_true", help="run failed entries again")
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    registry = get_registry()
    if args.strategies is None or args.datasets is None:  # what the profile's [run] names
        profile = build_config(args.profile, args.config)
        args.strategies = args.strategies or profile.strategy
        args.datasets = args.datasets or profile.dataset
    matrix = expand_matrix(registry, args.models, args.strategies, args.datasets, args.seeds,
                           args.profile, args.backend, args.config, args.robustness)
    if args.workers < 1:
        raise UserError("--workers must be at least 1")
    store = Store(args.store)
    counts = {"completed": 0, "failed": 0, "running": 0, "resumed": 0}
    progress = Progress(TextColumn("[bold]bench"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[note]}"), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=err_console)
    task = progress.add_task("bench", total=len(matrix.entries), note="")

    def on_event(kind, entry, outcome):
        if kind == "started":
            counts["running"] += 1
        elif kind == "resumed":
            counts["resumed"] += 1
            counts["completed" if outcome.status == "completed" else "failed"] += (
                outcome.status in ("completed", "failed"))
        else:
            counts["running"] -= 1
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
            if outcome.status == "failed":
                progress.console.print(f"[red]failed[/red] {entry.label()}: "
                                       f"{(outcome.error or '').splitlines()[0]}", highlight=False)
        note = (f"done {counts['completed']}  running {counts['running']}  "
                f"failed {counts['failed']}  (resumed {counts['resumed']})")
        progress.update(task, advance=0 if kind == "started" else 1, note=note)

    with progress:
        outcomes = run_matrix(matrix, store, args.workers, args.retry_failed, on_event)
    summary = [c.key for c in table_columns(registry, "summary")]
    rows = [{"model": o.entry.model, "strategy": o.entry.strategy, "dataset": o.entry.dataset,
             "seed": o.entry.seed, "status": o.status, "run_id": o.run_id,
             "resumed": o.resumed, **{key: o.metrics.get(key) for key in summary},
             "error": (o.error or "").splitlines()[0] if o.error else None} for o in outcomes]
    if args.json:
        print_json({"store": str(store.path), "entries": rows})
    else:
        table = Table(title=f"bench: {len(rows)} entries, profile {args.profile}")
        shown = ("model", "strategy", "dataset", "seed", "status", *summary, "run_id")
        for col in shown:
            table.add_column(col)
        for r in rows:
            table.add_row(*[fmt(r[c]) for c in shown])
        console.print(table)
    return 1 if any(r["status"] == "failed" for r in rows) else 0
