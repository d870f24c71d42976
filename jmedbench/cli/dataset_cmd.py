"""``jmedbench dataset show NAME``: what a dataset holds, per split, and a montage of its slices;
``jmedbench dataset compare A B``: their image statistics side by side (jmedbench.realism).

Works for any registered dataset: it is built exactly as a run builds it (profile, optional
config file, seed), then summarised from the subjects alone (images, labels, spacing, site,
sex, age, true BMD where known).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from jmedbench import CLASS_NAMES
from jmedbench.cli.common import add_json_option, console, err_console, print_json
from jmedbench.config import build_config
from jmedbench.data import Dataset, Subject
from jmedbench.engine.build import build_dataset
from jmedbench.errors import UserError
from jmedbench.registry import get_registry

MONTAGE_WINDOW = (-250.0, 1250.0)  # HU shown black..white: soft tissue and bone both readable
LABEL_COLOURS = {1: (1.0, 0.2, 0.15, 0.9), 2: (0.2, 0.95, 0.3, 0.9)}  # cortical, cancellous
PERCENTILE_SAMPLE = 200_000


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


def _range(values: list[float]) -> list[float] | None:
    return [float(min(values)), float(max(values))] if values else None


def summarize_split(subjects: list[Subject], seed: int = 0) -> dict[str, Any]:
    """Counts, spacing, HU statistics (all pixels and per class) and demographics of a split."""
    row: dict[str, Any] = {
        "subjects": len(subjects),
        "slices": int(sum(s.n_slices for s in subjects)),
        "labelled_slices": int(sum(int((s.label > 0).any(axis=(1, 2)).sum()) for s in subjects)),
        "sites": sorted({s.site for s in subjects if s.site}),
        "image_shapes": sorted({f"{s.image.shape[1]}x{s.image.shape[2]}" for s in subjects}),
        "spacing_mm": {axis: _range([float(s.spacing[i]) for s in subjects])
                       for i, axis in enumerate("zyx")},
        "sex": {sex: sum(1 for s in subjects if s.sex == sex)
                for sex in sorted({s.sex for s in subjects if s.sex})},
        "age": _range([s.age for s in subjects if s.age is not None]),
        "true_bmd_hu": _range([s.true_bmd for s in subjects if s.true_bmd is not None]),
    }
    if not subjects:
        return row
    row["hu_min"] = float(min(s.image.min() for s in subjects))
    row["hu_max"] = float(max(s.image.max() for s in subjects))
    # Percentiles from a fixed-size, seeded sample: exact enough, bounded memory for real CT.
    rng = np.random.default_rng(seed)
    total = sum(s.image.size for s in subjects)
    share = min(1.0, PERCENTILE_SAMPLE / total)
    sample = np.concatenate([
        s.image.ravel()[rng.random(s.image.size) < share] for s in subjects])
    if sample.size:
        row["hu_p1"], row["hu_p99"] = (float(v) for v in np.percentile(sample, [1, 99]))
    for value in range(1, len(CLASS_NAMES)):
        n, total_hu, total_sq = 0, 0.0, 0.0
        for s in subjects:
            pixels = s.image[s.label == value].astype(np.float64)
            n += pixels.size
            total_hu += float(pixels.sum())
            total_sq += float((pixels * pixels).sum())
        name = CLASS_NAMES[value]
        row[f"{name}_pixels"] = n
        if n:
            mean = total_hu / n
            row[f"{name}_hu_mean"] = mean
            row[f"{name}_hu_sd"] = float(np.sqrt(max(total_sq / n - mean * mean, 0.0)))
    return row


def summarize(dataset: Dataset, seed: int = 0) -> dict[str, Any]:
    return {"name": dataset.name,
            "splits": {split: summarize_split(subjects, seed)
                       for split, subjects in dataset.splits.items()},
            "info": dataset.info}


def label_outlines(label: np.ndarray) -> np.ndarray:
    """RGBA overlay of each class's edge pixels (inside the class), so the image under the
    labels stays visible."""
    from skimage.segmentation import find_boundaries

    edges = find_boundaries(label, mode="inner")
    overlay = np.zeros(label.shape + (4,), np.float32)
    for value, colour in LABEL_COLOURS.items():
        overlay[edges & (label == value)] = colour
    return overlay


def _montage_picks(dataset: Dataset, subjects: int, slices: int
                   ) -> list[tuple[str, Subject, list[int]]]:
    picks = []
    for split, members in dataset.splits.items():
        for subject in members[:subjects]:
            n = subject.n_slices
            count = min(slices, n)
            index = sorted({int(round(i)) for i in np.linspace(0, n - 1, count)})
            picks.append((split, subject, index))
    return picks


def write_montage(dataset: Dataset, path: Path, subjects: int = 2, slices: int = 4) -> int:
    """One row per subject (up to ``subjects`` per split), ``slices`` slices spread over its
    stack, label outlines overlaid (cortical red, cancellous green). Returns the number of
    tiles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = _montage_picks(dataset, subjects, slices)
    if not picks:
        raise UserError(f"dataset '{dataset.name}' has no subjects to draw")
    columns = max(len(index) for _, _, index in picks)
    fig, axes = plt.subplots(len(picks), columns, figsize=(2.4 * columns, 2.6 * len(picks)),
                             squeeze=False)
    tiles = 0
    for row, (split, subject, index) in enumerate(picks):
        for col in range(columns):
            ax = axes[row, col]
            ax.axis("off")
            if col >= len(index):
                continue
            i = index[col]
            ax.imshow(subject.image[i], cmap="gray", vmin=MONTAGE_WINDOW[0],
                      vmax=MONTAGE_WINDOW[1], interpolation="nearest")
            ax.imshow(label_outlines(subject.label[i]), interpolation="nearest")
            region = subject.meta.get("slice_regions")
            where = f" {region[i]}" if isinstance(region, list) and len(region) > i else ""
            ax.set_title(f"{split} {subject.subject_id} {subject.site} #{i}{where}", fontsize=7)
            tiles += 1
    fig.suptitle(f"{dataset.name}: HU window {MONTAGE_WINDOW[0]:g}..{MONTAGE_WINDOW[1]:g}; "
                 "outlines: red cortical, green cancellous", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise UserError(f"--out {path}: cannot write the montage ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
    return tiles


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
