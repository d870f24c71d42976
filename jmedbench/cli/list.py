"""``jmedbench list KIND [PATTERN]`` and ``jmedbench plugins``."""

from __future__ import annotations

import dataclasses
from typing import Any

from rich.markup import escape
from rich.table import Table

from jmedbench.cli.common import add_json_option, console, err_console, print_json
from jmedbench.engine.build import default_parameter_count
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
    row = {f.name: _plain(getattr(spec, f.name)) for f in dataclasses.fields(spec)
           if not callable(getattr(spec, f.name))}
    row["plugin"] = registry.owner(kind, spec.name, getattr(spec, "backend", None))
    if kind == "models":
        row["backends"] = registry.backends(spec.name)
        row["params"] = default_parameter_count(spec)
    return row


def _plain(value: Any) -> Any:
    """Spec fields as JSON has them: nested dataclasses (MetricSpec.columns) as dicts."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value] if any(dataclasses.is_dataclass(v) for v in value) \
            else value
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


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
