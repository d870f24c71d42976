"""``jmedbench runs``: list the stored runs (newest first, filtered), ``runs compare A B``,
``runs delete ID``, ``runs export ID DIR``."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from rich import box
from rich.table import Table

from jmedbench.cli.common import (add_json_option, add_store_option, console, err_console, fmt,
                                  print_json)
from jmedbench.columns import table_columns
from jmedbench.errors import UserError
from jmedbench.runs import (compare_runs, created_text, delete_run, export_run, filter_runs,
                            find_run, parse_date, run_files)
from jmedbench.store import Store, default_store_path

SHOWN_METRICS = ("dice", "shift_dice", "bmd_mae")  # the listing's columns, where present


def register(sub) -> None:
    p = sub.add_parser("runs", help="list stored runs (newest first); compare, delete, export")
    for key, example in (("model", "'unet*'"), ("strategy", "'ssl+*'"),
                         ("dataset", "'nifti:*'"), ("profile", "quick"),
                         ("status", "completed, failed, running or incomplete")):
        p.add_argument(f"--{key}", metavar="PATTERN",
                       help=f"only runs whose {key} matches this shell pattern (e.g. "
                            f"{example})")
    p.add_argument("--since", metavar="DATE", help="only runs created on or after DATE "
                                                   "(YYYY-MM-DD[THH:MM])")
    p.add_argument("--until", metavar="DATE", help="only runs created on or before DATE")
    p.add_argument("--limit", type=int, metavar="N", help="at most N runs (the newest)")
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(func=cmd_list)
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))

    c = actions.add_parser("compare", help="two runs side by side: metrics, difference and a "
                                           "paired test over their per-subject scores")
    c.add_argument("run_a", metavar="ID")
    c.add_argument("run_b", metavar="ID")
    c.add_argument("--all", action="store_true", help="every shared metric, not only the "
                                                      "run summary's")
    add_store_option(c)
    add_json_option(c)
    c.set_defaults(func=cmd_compare)

    d = actions.add_parser("delete", help="delete a run and its files (weights)")
    d.add_argument("run_id", metavar="ID")
    d.add_argument("--yes", action="store_true", help="do not ask")
    add_store_option(d)
    d.set_defaults(func=cmd_delete)

    e = actions.add_parser("export", help="write a run to a folder: run.json, per-image and "
                                          "per-subject metrics, a copy of its weights")
    e.add_argument("run_id", metavar="ID")
    e.add_argument("directory", type=Path, metavar="DIR")
    e.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty DIR, replacing files of the same names")
    add_store_option(e)
    e.set_defaults(func=cmd_export)


def _existing_store(path: str | None) -> Store | None:
    """The store at ``path`` (or the default), or None where there is none yet: browsing must
    not create an empty store."""
    location = Path(path) if path else default_store_path()
    return Store(location) if location.exists() else None


def existing_store_or_error(path: str | None) -> Store:
    store = _existing_store(path)
    if store is None:
        raise UserError(f"store {Path(path) if path else default_store_path()}: no such file "
                        f"(no run stored there yet; --store PATH or $JMEDBENCH_STORE)")
    return store


def cmd_list(args) -> int:
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: must be at least 1")
    for option, value in (("--since", args.since), ("--until", args.until)):
        if value:
            parse_date(value, option)  # a bad date is a mistake even with no store yet
    store = _existing_store(args.store)
    if store is None:
        console.print(f"no runs: store {Path(args.store) if args.store else default_store_path()}"
                      f" does not exist yet", highlight=False)
        return 0
    records = filter_runs(store.runs(), since=args.since, until=args.until, model=args.model,
                          strategy=args.strategy, dataset=args.dataset, status=args.status,
                          profile=args.profile)
    if args.limit is not None:
        records = records[:args.limit]
    if args.json:
        print_json([{key: r.get(key) for key in ("run_id", "created", "status", "model",
                                                 "strategy", "dataset", "profile", "seed",
                                                 "backend", "artifacts")}
                    | {"created_text": created_text(r), "metrics":
                       {k: (r.get("metrics") or {}).get(k) for k in SHOWN_METRICS}}
                    for r in records])
        return 0
    if not records:
        console.print(f"no runs in {store.path}" + (" match" if _filtered(args) else ""),
                      highlight=False)
        return 0
    # The run id begins with its creation time (YYYYMMDD-HHMMSS): no separate column.
    table = Table(title=f"{len(records)} run(s) in {store.path}", box=box.SIMPLE_HEAD,
                  padding=(0, 1), collapse_padding=True, show_edge=False, pad_edge=False,
                  caption="Dice: clean test Dice; BMD: BMD MAE (HU); w: weights saved")
    for column in ("run id", "status", "model / strategy", "dataset", "profile", "Dice",
                   "BMD", "w"):
        numeric = column in ("Dice", "BMD")
        table.add_column(column, justify="right" if numeric else "left",
                         no_wrap=column == "run id" or numeric, overflow="fold")
    for r in records:
        metrics = r.get("metrics") or {}
        table.add_row(r["run_id"], r["status"], f"{r['model'] or ''} / {r['strategy'] or ''}",
                      r["dataset"] or "", r["profile"] or "", fmt(metrics.get("dice"), 3),
                      fmt(metrics.get("bmd_mae"), 1),
                      "yes" if (r.get("artifacts") or {}).get("weights") else "-")
    console.print(table)
    return 0


def _filtered(args) -> bool:
    return any(getattr(args, k) for k in ("model", "strategy", "dataset", "profile", "status",
                                          "since", "until"))


def cmd_compare(args) -> int:
    from jmedbench.registry import get_registry

    store = existing_store_or_error(args.store)
    keys = None if args.all else [c.key for c in table_columns(get_registry(), "run")]
    result = compare_runs(store, args.run_a, args.run_b, keys)
    a, b = result.a["run_id"], result.b["run_id"]
    if args.json:
        print_json({"a": a, "b": b,
                    "metrics": [{"metric": k, "a": x, "b": y, "difference": d}
                                for k, x, y, d in result.metrics],
                    "per_subject_scores": result.subject_scores,
                    "paired_tests": [t.__dict__ for t in result.tests]})
        return 0
    table = Table(title=f"A {a} ({result.a['model']} / {result.a['strategy']})\n"
                        f"B {b} ({result.b['model']} / {result.b['strategy']})",
                  box=box.SIMPLE_HEAD)
    for column in ("metric", "A", "B", "B - A"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key, x, y, d in result.metrics:
        table.add_row(key, fmt(x), fmt(y), f"{d:+.4f}" if math.isfinite(d) else fmt(d))
    console.print(table)
    if result.a["dataset"] != result.b["dataset"]:
        console.print(f"note: the runs scored different datasets ({result.a['dataset']}, "
                      f"{result.b['dataset']})", highlight=False)
    if not result.subject_scores:
        console.print("paired test: no per-subject scores (stored by newer runs only)",
                      highlight=False)
        return 0
    if not result.tests:
        console.print("paired test: the runs share no scored subject", highlight=False)
        return 0
    tests = Table(title="paired Wilcoxon signed-rank test over subjects scored by both",
                  box=box.SIMPLE_HEAD)
    for column in ("split", "metric", "n", "median A", "median B", "median B - A", "p"):
        tests.add_column(column, justify="left" if column in ("split", "metric") else "right")
    for t in result.tests:
        tests.add_row(t.split, t.metric, str(t.n), fmt(t.median_a), fmt(t.median_b),
                      f"{t.median_difference:+.4f}",
                      "identical" if math.isnan(t.p_value) else f"{t.p_value:.3g}")
    console.print(tests)
    return 0


def cmd_delete(args) -> int:
    store = existing_store_or_error(args.store)
    record = find_run(store, args.run_id)
    files = run_files(store, record)
    what = (f"run {record['run_id']} ({record['model']} / {record['strategy']} / "
            f"{record['dataset']}, {record['status']})"
            + (f" and {len(files)} file(s)/folder(s) of it" if files else ""))
    if not args.yes:
        if not sys.stdin.isatty():
            raise UserError(f"runs delete {record['run_id']}: asks before deleting; give "
                            f"--yes to delete without a terminal")
        err_console.print(f"delete {what}? [y/N] ", end="", highlight=False)
        if input().strip().lower() not in ("y", "yes"):
            err_console.print("nothing deleted", highlight=False)
            return 0
    record, removed = delete_run(store, record["run_id"])
    console.print(f"deleted {what}" + (": " + ", ".join(str(p) for p in removed)
                                       if removed else ""), highlight=False)
    return 0


def cmd_export(args) -> int:
    written = export_run(existing_store_or_error(args.store), args.run_id, args.directory,
                         args.overwrite)
    console.print(f"wrote {len(written)} file(s) to {args.directory}: "
                  + ", ".join(p.name for p in written), highlight=False)
    return 0
