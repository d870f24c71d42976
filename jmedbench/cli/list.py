"""``jmedbench list KIND [PATTERN]`` and ``jmedbench plugins``."""

from __future__ import annotations

import dataclasses
from typing import Any

from rich.markup import escape
from rich.table import Table

from jmedbench.cli.common import add_json_option, console, err_console, print_json
from jmedbench.registry import KINDS, get_registry


def register(sub) -> None:
    p = sub.add_parser("list", help="list registered models, datasets, strategies, metrics, "
                       "corruptions")
    p.add_argument("kind", choices=list(KINDS))
    p.add_argument("pattern", nargs="?", help="shell-style wildcard, e.g. 'unet*'")
    add_json_option(p)
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("plugins", help="installed plugins, what they register, and problems")
    add_json_option(p)
    p.set_defaults(func=cmd_plugins)


COLUMNS = {
    "models": ["name", "family", "backends", "params", "input_multiple", "description",
               "citation"],
    "datasets": ["name", "description", "argument", "tags"],
    "strategies": ["name", "components", "description", "citation"],
    "metrics": ["name", "scope", "higher_is_better", "description"],
    "corruptions": ["name", "family", "severities", "geometric", "density", "description"],
    "backends": ["name", "description", "install"],
}


def spec_row(kind: str, spec: Any, registry) -> dict[str, Any]:
    row = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)
           if not callable(getattr(spec, f.name))}
    row["plugin"] = registry.owner(kind, spec.name, getattr(spec, "backend", None))
    if kind == "models":
        row["backends"] = registry.backends(spec.name)
        row["params"] = default_params(spec)
    return row


def default_params(spec: Any) -> int | None:
    """Parameter count at the model's default options, built on torch's meta device (no memory,
    no computation); None for a model that cannot be built there."""
    if spec.backend != "torch":
        return None
    import torch

    try:
        with torch.device("meta"):
            model = spec.factory(in_channels=1, num_classes=3, **spec.defaults)
        return sum(p.numel() for p in model.parameters())
    except Exception:  # a listing must never fail because one model cannot be built
        return None


def cmd_list(args) -> int:
    registry = get_registry()
    specs = registry.specs(args.kind, args.pattern)
    if args.kind == "models":  # one row per name; the backends column lists them all
        specs = [s for s in specs if s.backend == registry.backends(s.name)[0]]
    rows = [spec_row(args.kind, s, registry) for s in specs]
    if args.json:
        print_json(rows)
    else:
        title = f"{len(rows)} {args.kind}" + (f" matching '{args.pattern}'" if args.pattern else "")
        table = Table(title=title)
        for column in COLUMNS[args.kind]:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*[_cell(f"{row[c] / 1e6:.2f} M" if c == "params" and row[c] else row.get(c))
                            for c in COLUMNS[args.kind]])
        console.print(table)
    for problem in registry.problems:
        err_console.print(f"[yellow]warning:[/yellow] {problem}", highlight=False)
    return 0


def _cell(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return escape(", ".join(map(str, value)))
    return "" if value is None else escape(str(value))  # "jmedbench[jittor]" is not markup


def cmd_plugins(args) -> int:
    registry = get_registry()
    rows = [dataclasses.asdict(info) for info in registry.plugins.values()]
    if args.json:
        print_json({"plugins": rows, "problems": registry.problems})
        return 0
    table = Table(title="jmedbench plugins")
    for column in ("name", "module", "distribution", "version", "status", "registers"):
        table.add_column(column)
    for row in rows:
        registers = ", ".join(f"{n} {k}" for k, n in row["counts"].items() if n)
        status = row["status"] if row["status"] == "ok" else f"[red]{row['status']}[/red]"
        table.add_row(row["name"], row["module"], row["distribution"] or "",
                      row["version"] or "", status, registers or row["error"] or "")
    console.print(table)
    for problem in registry.problems:
        console.print(f"[red]problem:[/red] {problem}", highlight=False)
    return 0
