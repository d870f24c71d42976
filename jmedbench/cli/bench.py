"""``jmedbench bench``: run a matrix of models x strategies x datasets x seeds, resumable, on
any number of machines sharing one store; ``--status`` shows where every entry stands."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from jmedbench.claims import DEFAULT_LEASE, Claims
from jmedbench.cli.common import (add_execution_options, add_json_option, add_store_option,
                                  console, err_console, fmt, print_json)
from jmedbench.columns import table_columns
from jmedbench.config import build_config
from jmedbench.engine.devices import check_spelling
from jmedbench.engine.bench import WorkerSpec, expand_matrix, register_matrix, run_matrix
from jmedbench.engine.executors import EXECUTORS, follow, read_executor_config, settled, submit
from jmedbench.errors import UserError
from jmedbench.registry import get_registry
from jmedbench.store import Store


def register(sub) -> None:
    p = sub.add_parser("bench", help="run a resumable matrix of runs (models x strategies x "
                       "datasets x seeds), on one machine or many sharing a store")
    p.add_argument("--models", required=True, help="names or wildcards, comma separated: "
                   "'unet*,segnet' or '*'; '!' drops what follows, e.g. '*,!smp-*,!monai-*'")
    p.add_argument("--strategies", help="comma separated, e.g. baseline,sas (default: the "
                                        "profile's strategy, baseline)")
    p.add_argument("--datasets", help="comma separated (default: the profile's dataset, "
                                      "phantom)")
    p.add_argument("--seeds", default="0", help="comma separated integers")
    p.add_argument("--profile", default="default")
    p.add_argument("--backend", default="torch")
    p.add_argument("--config", metavar="FILE.toml", help="merged over the profile for every run")
    p.add_argument("--robustness", nargs="?", const="all", metavar="FAMILY,...")
    p.add_argument("--workers", type=int, default=1, help="runs in parallel on this machine "
                   "(threads are split)")
    p.add_argument("--retry-failed", action="store_true", help="run failed entries again")
    p.add_argument("--status", action="store_true", help="show every entry of the matrix: done, "
                   "running (where, since when), failed, waiting; runs nothing")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: this process is the worker (default); submitit: a Slurm job "
                        "array of workers (options in --executor-config)")
    p.add_argument("--executor-config", metavar="FILE.toml",
                   help="the [submitit] table: jobs, workers, folder, cluster, Slurm options")
    p.add_argument("--detach", action="store_true",
                   help="with --executor submitit: submit and return (follow with --status)")
    p.add_argument("--lease", type=float, default=DEFAULT_LEASE, metavar="SECONDS",
                   help="an entry whose worker stops renewing its claim for this long is taken "
                        f"over by another worker (default {DEFAULT_LEASE:g})")
    p.add_argument("--artifacts", metavar="DIR", help="folder for run files (weights, figures), "
                   "one every node reaches; default beside an SQLite store; needed for a "
                   "database server (or $JMEDBENCH_ARTIFACTS)")
    add_execution_options(p)
    p.add_argument("--no-save-weights", action="store_true",
                   help="runs keep no trained model (by default each does, in --artifacts)")
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(func=cmd_bench)


def execution_arguments(args) -> tuple[str, ...]:
    """The device options as `run` arguments, for every entry of the matrix."""
    given = [("--device", args.device), ("--precision", args.precision),
             ("--channels-last", args.channels_last)]
    out = [part for option, value in given if value for part in (option, value)]
    return tuple(out + (["--compile"] if args.compile else []))


def cmd_bench(args) -> int:
    # The store first: a wrong or unreachable URL is one line before plugins load.
    store = Store(args.store, artifacts=args.artifacts)
    if not args.no_save_weights and not args.status:  # every run keeps its weights: where?
        store.require_artifacts()
    registry = get_registry()
    if args.strategies is None or args.datasets is None:  # what the profile's [run] names
        profile = build_config(args.profile, args.config)
        args.strategies = args.strategies or profile.strategy
        args.datasets = args.datasets or profile.dataset
    # Spelling only: each entry's run resolves the device on the node that runs it (this may
    # be a login node without the GPUs its jobs get).
    check_spelling(args.device, args.precision)
    matrix = expand_matrix(registry, args.models, args.strategies, args.datasets, args.seeds,
                           args.profile, args.backend, args.config, args.robustness,
                           execution_arguments(args))
    matrix.save_weights = not args.no_save_weights
    for note in matrix.notes:
        err_console.print(f"[yellow]{note}[/yellow]", highlight=False)
    if args.workers < 1:
        raise UserError("--workers must be at least 1")
    if not args.lease > 0:
        raise UserError(f"--lease {args.lease:g}: must be more than 0 seconds")
    if args.detach and args.executor != "submitit":
        raise UserError("--detach: only with --executor submitit")
    options = read_executor_config(args.executor_config) if args.executor == "submitit" else None
    if args.status:
        return show_status(matrix, store, args)

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
            counts[outcome.status] += 1
        else:
            counts["running"] -= 1
            if kind == "lost":
                progress.console.print(f"[yellow]taken over[/yellow] {entry.label()}: "
                                       f"{outcome.error}", highlight=False)
            else:
                counts[kind] += 1
            if kind == "failed":
                progress.console.print(f"[red]failed[/red] {entry.label()}: "
                                       f"{(outcome.error or '').splitlines()[0]}", highlight=False)
        note = (f"done {counts['completed']}  running {counts['running']}  "
                f"failed {counts['failed']}  (resumed {counts['resumed']})")
        progress.update(task, completed=counts["completed"] + counts["failed"], note=note)

    problems: list[str] = []
    if args.executor == "local":
        with progress:
            outcomes = run_matrix(matrix, store, args.workers, args.retry_failed, on_event,
                                  lease=args.lease)
    else:
        if matrix.config_file:  # the jobs may start elsewhere in the tree
            matrix = dataclasses.replace(matrix,
                                         config_file=str(Path(matrix.config_file).absolute()))
        spec = WorkerSpec(matrix, store.url, str(store.artifacts_root.absolute())
                          if store.artifacts_root else None, options.workers, args.lease,
                          args.retry_failed)
        if args.retry_failed:
            claims = Claims(store, lease=args.lease)
            claims.retry_failed(register_matrix(matrix, claims))
        before = settled(matrix, store)
        jobs = submit(spec, options, f"--executor-config {args.executor_config} [submitit]")
        ids = ", ".join(str(j.job_id) for j in jobs)
        err_console.print(f"submitted {len(jobs)} worker job(s): {ids} (logs in "
                          f"{options.folder}/)", highlight=False)
        if args.detach:
            if args.json:
                print_json({"store": store.location, "jobs": [str(j.job_id) for j in jobs]})
            return 0
        with progress:
            outcomes, problems = follow(matrix, store, jobs, before, on_event)
        for line in problems:
            err_console.print(f"[red]worker failed[/red] {line}", highlight=False)
    summary = [c.key for c in table_columns(registry, "summary")]
    rows = [{"model": o.entry.model, "strategy": o.entry.strategy, "dataset": o.entry.dataset,
             "seed": o.entry.seed, "status": o.status, "run_id": o.run_id,
             "resumed": o.resumed, **{key: o.metrics.get(key) for key in summary},
             "error": (o.error or "").splitlines()[0] if o.error else None} for o in outcomes]
    if args.json:
        print_json({"store": store.location, "entries": rows, "worker_errors": problems})
    else:
        table = Table(title=f"bench: {len(rows)} entries, profile {args.profile}")
        shown = ("model", "strategy", "dataset", "seed", "status", *summary, "run_id")
        for col in shown:
            table.add_column(col)
        for r in rows:
            table.add_row(*[fmt(r[c]) for c in shown])
        console.print(table)
    unsettled = len(matrix.entries) - len(rows)
    if unsettled:
        err_console.print(f"[red]{unsettled} entries not done[/red]: the workers ended first "
                          "(see jmedbench bench ... --status)", highlight=False)
    return 1 if unsettled or problems or any(r["status"] == "failed" for r in rows) else 0


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def show_status(matrix, store: Store, args) -> int:
    claims = Claims(store, lease=args.lease)
    keys = register_matrix(matrix, claims)
    board = claims.board(keys)
    rows = []
    for entry, row in zip(matrix.entries, board):
        now = row["now"]
        state = {"completed": "done", "expired": "lost"}.get(row["shown"], row["shown"])
        where = f"{row['host']}:{row['pid']}" if row.get("host") else None
        rows.append({
            "entry": entry.label(), "state": state, "worker": where,
            "since": (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["claimed"]))
                      if row.get("claimed") else None),
            "for_s": (now - row["claimed"]) if state in ("running", "lost") and row.get("claimed")
            else None,
            "heartbeat_s": (now - row["heartbeat"]) if state in ("running", "lost")
            and row.get("heartbeat") else None,
            "attempts": row.get("attempts", 0), "run_id": row.get("run_id"),
            "error": row.get("error")})
    totals = {s: sum(r["state"] == s for r in rows) for s in ("done", "running", "lost",
                                                              "failed", "waiting")}
    if args.json:
        print_json({"store": store.location, "totals": totals, "entries": rows})
        return 0
    table = Table(title=f"bench status: {len(rows)} entries in {store.location}")
    with_errors = any(r["error"] for r in rows)
    for col in ("entry", "state", "worker", "for", "heartbeat", "tries", "run_id",
                *(["error"] if with_errors else [])):
        table.add_column(col, overflow="fold")  # whole entry names and run ids, wrapped
    colour = {"done": "green", "running": "cyan", "failed": "red", "lost": "yellow"}
    for r in rows:
        state = f"[{colour[r['state']]}]{r['state']}[/]" if r["state"] in colour else r["state"]
        beat = _ago(r["heartbeat_s"]) + " ago" if r["heartbeat_s"] is not None else "-"
        cells = [r["entry"], state, fmt(r["worker"]), _ago(r["for_s"]), beat,
                 str(r["attempts"]), fmt(r["run_id"])]
        table.add_row(*cells, *([fmt((r["error"] or "")[:80] or None)] if with_errors else []))
    console.print(table)
    console.print("  ".join(f"{k} {v}" for k, v in totals.items()) +
                  "   (lost: its worker stopped renewing the lease; the next worker to look "
                  "takes it over)" * (totals["lost"] > 0), highlight=False)
    return 0
