"""``jmedbench corruptions show`` (a gallery of one slice under every corruption and severity)
and ``jmedbench corruptions plot RUN_ID`` (a stored run's Dice and BMD error against severity,
per family, with its table)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from jmedbench.cli.common import (add_json_option, add_store_option, console, err_console, fmt,
                                  print_json)
from jmedbench.columns import headline_title, table_columns
from jmedbench.engine.robustness import check_severities, resolve_corruptions
from jmedbench.errors import UserError
from jmedbench.registry import get_registry
from jmedbench.reports.corruptions import (gallery_slice, render_gallery, render_severity_plot,
                                           stored_robustness)
from jmedbench.specs import Column
from jmedbench.store import Store


def register(sub) -> None:
    p = sub.add_parser("corruptions", help="the robustness suite: gallery and severity plots")
    inner = p.add_subparsers(dest="corruptions_command", metavar="ACTION")
    inner.required = True

    show = inner.add_parser("show", help="gallery of one slice under corruptions and severities, "
                            "with its mask outline")
    show.add_argument("names", nargs="*", metavar="NAME",
                      help="corruptions or families (default: all)")
    show.add_argument("--severity", type=int, action="append", metavar="S",
                      help="show only this severity (repeatable; default 1..5)")
    show.add_argument("--out", required=True, metavar="PNG", help="image file to write")
    show.add_argument("--dataset", help="dataset to take the slice from (default: the quick "
                                        "profile's, the phantom)")
    show.add_argument("--size", type=int, default=128, help="image size (default 128)")
    show.add_argument("--seed", type=int, default=0)
    add_json_option(show)
    show.set_defaults(func=cmd_show)

    plot = inner.add_parser("plot", help="Dice and BMD error against severity for a stored run")
    plot.add_argument("run_id", help="run id (a unique prefix is enough)")
    plot.add_argument("--out", metavar="PNG", help="image file (default robustness-RUN_ID.png)")
    add_store_option(plot)
    add_json_option(plot)
    plot.set_defaults(func=cmd_plot)


def cmd_show(args) -> int:
    registry = get_registry()
    specs = resolve_corruptions(registry, args.names or ["all"])
    severities = check_severities(args.severity or [1, 2, 3, 4, 5], specs)
    if args.size < 32 or args.size % 16:
        raise UserError(f"--size {args.size}: must be a multiple of 16, at least 32")
    image, label = gallery_slice(args.dataset, args.size, args.seed)
    result = render_gallery(image, label, specs, severities, args.out, args.seed)
    if args.json:
        print_json(result)
    else:
        err_console.print(f"wrote {args.out}: {len(specs)} corruptions x {len(severities)} "
                          "severities", highlight=False)
    return 0


def cmd_plot(args) -> int:
    store = Store(args.store)
    record = store.get_run(args.run_id)
    robust = stored_robustness(record)
    out = Path(args.out or f"robustness-{record['run_id']}.png")
    if out.parent and not out.parent.exists():
        raise UserError(f"--out {out}: folder {out.parent} does not exist")
    metrics = record.get("metrics") or {}
    registry = get_registry()
    headline = registry.flagged("metrics", "headline")
    score, name = headline_title(headline), headline.name
    title = (f"run {record['run_id']}: {record['model']} / {record['strategy']} / "
             f"{record['dataset']} ({record['profile']}); mPC "
             f"{fmt(metrics.get(f'mpc_{name}'), 3)}, rPC {fmt(metrics.get(f'rpc_{name}'), 3)}, "
             f"mCE {fmt(metrics.get('mce'), 3)}")
    # the headline, then the lower-is-better numbers robustness scores (BMD error)
    errors = [Column(c.key, c.description or c.title)
              for c in table_columns(registry, "summary") if not c.higher_is_better]
    render_severity_plot(robust, out, title,
                         [Column(name, f"{score} (mean over corruptions)"), *errors])
    if args.json:
        print_json({"run_id": record["run_id"], "out": str(out),
                    "summary": {k: v for k, v in metrics.items()
                                if k.startswith(("mpc_", "rpc_", "mce"))},
                    "mce": robust.get("mce"), "table": robust["table"]})
        return 0
    severities = robust["protocol"]["severities"]
    table = Table(title=f"{score} under corruption, run {record['run_id']} (clean "
                        f"{fmt(robust['clean'].get(name), 3)})")
    for column in ["corruption", "family", "density"] + [f"s{s}" for s in severities] + ["CE"]:
        table.add_column(column, justify="left" if column in ("corruption", "family",
                                                             "density") else "right")
    for name, row in robust["corruptions"].items():
        by_severity = dict(zip(row["severities"], row[name]))
        table.add_row(name, row["family"], row["density"],
                      *[fmt(by_severity.get(s), 3) for s in severities], fmt(row["ce"], 3))
    console.print(table)
    mce = robust.get("mce") or {}
    if mce.get("reason"):
        console.print(f"mCE: {mce['reason']}", highlight=False)
    err_console.print(f"wrote {out}", highlight=False)
    return 0
