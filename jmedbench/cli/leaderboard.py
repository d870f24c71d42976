"""``jmedbench leaderboard build``: render the store into leaderboards/ (JSON, MD, CSV, HTML,
rankings over subjects and their figures)."""

from __future__ import annotations

import shlex
import sys

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from jmedbench import leaderboard
from jmedbench.cli.common import (add_json_option, add_store_option, console, err_console,
                                  print_json)
from jmedbench.errors import UserError
from jmedbench.registry import get_registry
from jmedbench.store import Store, default_store_location, mask_url, store_exists


def register(sub) -> None:
    p = sub.add_parser("leaderboard", help="build leaderboard tables from the results store")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    b = actions.add_parser("build", help="write entries/*.json, leaderboard.md/.csv/.json, "
                           "ranking.md/.json, robustness.csv, index.html, figures")
    b.add_argument("--out", default="leaderboards", help="output folder (default leaderboards/)")
    add_store_option(b)
    add_json_option(b)
    b.set_defaults(func=cmd_build)


def cmd_build(args) -> int:
    path = args.store or default_store_location()
    if not store_exists(path):  # checked before opening: opening would create an empty store
        raise UserError(f"store {path}: does not exist")
    store = Store(path)
    command = "jmedbench " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] \
        else "jmedbench leaderboard build"
    command = mask_url(command)  # written into the README: never a store's password
    progress = Progress(TextColumn("[bold]leaderboard {task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), console=err_console)
    tasks: dict[str, int] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done)

    try:
        with progress:
            summary = leaderboard.build(store, args.out, command, get_registry(), on_progress)
    except OSError as exc:
        raise UserError(f"--out {args.out}: cannot write ({exc.strerror})") from None
    if args.json:
        print_json(summary)
    else:
        console.print(f"leaderboard: {summary['entries']} entries over {summary['models']} "
                      f"models written to {summary['out']}/; rankings over subjects in "
                      f"{summary['comparisons']} comparison(s)"
                      + (f", figures {', '.join(summary['ranking_figures'])}"
                         if summary["ranking_figures"] else ""), highlight=False)
    return 0
