"""``jmedbench leaderboard build``: render the store into leaderboards/ (JSON, MD, CSV, HTML)."""

from __future__ import annotations

import shlex
import sys

from jmedbench import leaderboard
from jmedbench.cli.common import add_json_option, add_store_option, console, print_json
from jmedbench.errors import UserError
from jmedbench.registry import get_registry
from jmedbench.store import Store, default_store_location, mask_url, store_exists


def register(sub) -> None:
    p = sub.add_parser("leaderboard", help="build leaderboard tables from the results store")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    b = actions.add_parser("build", help="write entries/*.json, leaderboard.md/.csv/.json, "
                           "index.html")
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
    try:
        summary = leaderboard.build(store, args.out, command, get_registry())
    except OSError as exc:
        raise UserError(f"--out {args.out}: cannot write ({exc.strerror})") from None
    if args.json:
        print_json(summary)
    else:
        console.print(f"leaderboard: {summary['entries']} entries over {summary['models']} "
                      f"models written to {summary['out']}/", highlight=False)
    return 0
