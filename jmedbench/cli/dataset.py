"""``jmedbench dataset show NAME``: what a dataset holds, per split, and a montage of its slices;
``jmedbench dataset compare A B``: their image statistics side by side (jmedbench.realism).

Works for any registered dataset: it is built exactly as a run builds it (profile, optional
config file, seed), then summarised from the subjects alone (images, labels, spacing, site,
sex, age, true BMD where known).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from jmedbench.cli.common import add_json_option, console, err_console, print_json
from jmedbench.config import build_config
from jmedbench.engine.build import build_dataset
from jmedbench.errors import UserError
from jmedbench.registry import get_registry
from jmedbench.reports.dataset import summarize, write_montage



def register(sub) -> None:
    p = sub.add_parser("dataset", help="inspect a dataset (summary table, montage)")
    actions = p.add_subparsers(dest="dataset_action", metavar="ACTION", parser_class=type(p))
    actions.required = True
    s = actions.add_parser("show", help="subjects, slices, sites, spacing, HU and true-BMD "
                           "ranges per split, and optionally a PNG montage with label overlays")
    s.add_argument("name", help="dataset name (jmedbench list datasets), e.g. phantom")
    s.add_argument("--profile", default="quick",
                   help="profile whose [data] options build the dataset (default: quick)")
    s.add_argument("--seed", type=int, help="dataset seed (default: the profile's)")
    s.add_argument("--config", metavar="FILE.toml", help="a TOML file merged over the profile")
    s.add_argument("--out", metavar="PNG", help="write a montage of slices with label overlays")
    s.add_argument("--subjects", type=_positive, default=2, metavar="N",
                   help="subjects per split in the montage (default 2)")
    s.add_argument("--slices", type=_positive, default=4, metavar="N",
                   help="slices per subject in the montage, spread over its stack (default 4)")
    add_json_option(s)
    s.set_defaults(func=cmd_show)
    c = actions.add_parser("compare", help="realism report: image statistics of two (or more) "
                           "datasets side by side (jmedbench.realism), optionally a figure")
    c.add_argument("names", nargs="+", metavar="NAME",
                   help="datasets to compare, e.g. phantom example (two or more)")
    c.add_argument("--profile", default="default",
                   help="profile whose [data] options build the datasets (default: default)")
    c.add_argument("--seed", type=int, help="dataset seed (default: the profile's)")
    c.add_argument("--config", metavar="FILE.toml", help="a TOML file merged over the profile")
    c.add_argument("--split", help="split to measure in every dataset (default: the first of "
                   "test, train, val, shift with cancellous labels)")
    c.add_argument("--out", metavar="PNG", help="write the histograms and outline profiles")
    add_json_option(c)
    c.set_defaults(func=cmd_compare)


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def cmd_show(args) -> int:
    cfg = build_config(args.profile, args.config, {"dataset": args.name, "seed": args.seed})
    out = Path(args.out) if args.out else None
    if out is not None:
        if out.suffix.lower() != ".png":
            raise UserError(f"--out {out}: the montage is a PNG, name it *.png")
        if not out.parent.exists() or not out.parent.is_dir():
            raise UserError(f"--out {out}: folder {out.parent} does not exist")
    registry = get_registry()
    registry.dataset(cfg.dataset.partition(":")[0])  # an unknown name fails before any work
    if not args.json:
        err_console.print(f"building dataset '{args.name}' (profile {cfg.profile}, "
                          f"seed {cfg.seed}) ...", highlight=False)
    dataset = build_dataset(registry, cfg)
    summary = summarize(dataset, cfg.seed)
    summary.update(profile=cfg.profile, seed=cfg.seed)
    if out is not None:
        summary["montage"] = {"path": str(out),
                              "tiles": write_montage(dataset, out, args.subjects, args.slices)}
    if args.json:
        print_json(summary)
        return 0
    # One column per split, one row per quantity: fits a terminal for any number of splits.
    splits = summary["splits"]
    table = Table(title=f"dataset {dataset.name} (profile {cfg.profile}, seed {cfg.seed})")
    table.add_column("", no_wrap=True)
    for split in splits:
        table.add_column(split, justify="right")
    for name, cell in TABLE_ROWS:
        table.add_row(name, *[cell(row) for row in splits.values()])
    console.print(table)
    if out is not None:
        console.print(f"montage: {out} ({summary['montage']['tiles']} slices)", highlight=False)
    return 0


def _sex(row: dict[str, Any]) -> str:
    return " ".join(f"{k}{v}" for k, v in row["sex"].items()) or "-"


TABLE_ROWS = [
    ("subjects", lambda r: str(r["subjects"])),
    ("sex", _sex),
    ("age", lambda r: _pair(*(r["age"] or (None, None)), 0)),
    ("slices (labelled)", lambda r: f"{r['slices']} ({r['labelled_slices']})"),
    ("sites", lambda r: ",".join(r["sites"]) or "-"),
    ("slice spacing mm", lambda r: _span(r["spacing_mm"].get("z"))),
    ("pixel mm", lambda r: _span(r["spacing_mm"].get("x"))),
    ("HU min..max", lambda r: _pair(r.get("hu_min"), r.get("hu_max"), 0)),
    ("HU p1..p99", lambda r: _pair(r.get("hu_p1"), r.get("hu_p99"), 0)),
    ("cortical HU", lambda r: _mean_sd(r, "cortical")),
    ("cancellous HU", lambda r: _mean_sd(r, "cancellous")),
    ("true BMD HU", lambda r: _pair(*(r["true_bmd_hu"] or (None, None)), 1)),
]


def _pair(low: Any, high: Any, digits: int) -> str:
    if low is None or high is None:
        return "-"
    return f"{low:.{digits}f}..{high:.{digits}f}"



def _mean_sd(row: dict[str, Any], name: str) -> str:
    if f"{name}_hu_mean" not in row:
        return "-"
    return f"{row[f'{name}_hu_mean']:.0f} ± {row[f'{name}_hu_sd']:.0f}"


def _span(value: list[float] | None) -> str:
    if value is None:
        return "-"
    if abs(value[1] - value[0]) < 5e-3:
        return f"{value[0]:.2f}"
    return f"{value[0]:.2f}..{value[1]:.2f}"


def cmd_compare(args) -> int:
    from jmedbench.realism import comparison_rows, plot_comparison, realism_stats

    if len(args.names) < 2:
        raise UserError("dataset compare: name at least two datasets, e.g. phantom example")
    out = Path(args.out) if args.out else None
    if out is not None:
        if out.suffix.lower() != ".png":
            raise UserError(f"--out {out}: the figure is a PNG, name it *.png")
        if not out.parent.is_dir():
            raise UserError(f"--out {out}: folder {out.parent} does not exist")
    registry = get_registry()
    configs = [build_config(args.profile, args.config, {"dataset": name, "seed": args.seed})
               for name in args.names]
    for cfg in configs:  # every name is checked before any dataset is built
        registry.dataset(cfg.dataset.partition(":")[0])
    datasets, stats = [], []
    for name, cfg in zip(args.names, configs):
        if not args.json:
            err_console.print(f"building and measuring dataset '{name}' ...", highlight=False)
        dataset = build_dataset(registry, cfg)
        try:
            stats.append(realism_stats(dataset, args.split, name=name))
        except ValueError as exc:
            raise UserError(f"dataset {name}: {exc}") from None
        datasets.append(dataset)
    if out is not None:
        plot_comparison(stats, datasets, out)
    if args.json:
        print_json({"profile": args.profile, "datasets": [s.to_dict() for s in stats],
                    "figure": str(out) if out else None})
        return 0
    table = Table(title=f"realism report (profile {args.profile})")
    table.add_column("statistic", no_wrap=True)
    for st in stats:
        table.add_column(f"{st.name} ({st.subjects} subj.)", justify="right")
    for title, values in comparison_rows(stats):
        table.add_row(title, *values)
    console.print(table)
    if out is not None:
        console.print(f"figure: {out}", highlight=False)
    return 0
