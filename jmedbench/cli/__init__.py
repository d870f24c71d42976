"""The ``jmedbench`` command. Each command (or pair of commands that share their options) lives
in ``cli/<command>.py`` with a ``register(subparsers)`` function, and does CLI work only:
options, calls into the library, printing. User mistakes become one line on stderr and exit
status 2."""

from __future__ import annotations

import argparse
import importlib
import sys

from rich.markup import escape

from jmedbench import __version__
from jmedbench.cli.common import err_console
from jmedbench.errors import UserError

COMMAND_MODULES = [
    "jmedbench.cli.list",         # list, plugins
    "jmedbench.cli.run",          # run, show
    "jmedbench.cli.bench",
    "jmedbench.cli.tune",
    "jmedbench.cli.leaderboard",
    "jmedbench.cli.profile",
    "jmedbench.cli.ablation",
    "jmedbench.cli.density",      # density, cohort
    "jmedbench.cli.dataset",
    "jmedbench.cli.corruptions",
    "jmedbench.cli.runs",         # runs (list, compare, delete, export)
    "jmedbench.cli.predict",
    "jmedbench.cli.export",
]


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake exits 2 with one line (argparse's own rule) and a hint."""

    def error(self, message: str) -> None:  # type: ignore[override]
        err_console.print(f"[red]error:[/red] {self.prog}: {message} (see {self.prog} --help)",
                          highlight=False)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="jmedbench", description="Benchmark segmentation models by the bone "
                    "mineral density measured from their masks.")
    parser.add_argument("--version", action="version", version=f"jmedbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        # escape: messages quote brackets ("[strategy] ...", "pip install 'jmedbench[jittor]'")
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False,
                          soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/yellow]")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
