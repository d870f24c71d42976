"""``jmedbench density`` (BMD of one CT from a mask) and ``jmedbench cohort`` (age regressions
of BMD per sex and site, from a CSV or from a dataset's subjects)."""

from __future__ import annotations

import math
from typing import Any

from rich import box
from rich.table import Table

from jmedbench.cli.common import add_json_option, console, err_console, fmt, print_json
from jmedbench.config import build_config
from jmedbench.density.bmd import bmd_from_mask, default_mask_label
from jmedbench.density.cohort import CohortResult, cohort_statistics, read_cohort_csv
from jmedbench.engine.progress import Reporter, RichReporter
from jmedbench.errors import UserError
from jmedbench.reports.cohort import dataset_cohort


def register(sub) -> None:
    p = sub.add_parser("density", help="BMD of a CT from a mask: the mode of a Johnson-Su fit "
                                       "to the masked HU values (the paper's Figure 6)")
    p.add_argument("image", metavar="IMAGE", help="CT volume: a NIfTI file or a DICOM series "
                                                  "directory")
    p.add_argument("--mask", required=True, metavar="MASK",
                   help="NIfTI label map on the image's voxel grid")
    p.add_argument("--label", type=int, default=None,
                   help="label value of the cancellous bone in MASK (default: 1 in a binary "
                        "mask of labels 0 and 1, else 2, jmedbench's cancellous label)")
    p.add_argument("--stored-values", action="store_true",
                   help="report BMD as stored values HU + 1024 (the paper's unit)")
    p.add_argument("--plot", metavar="OUT.png", help="write the histogram, fitted pdf and mode")
    add_json_option(p)
    p.set_defaults(func=cmd_density)

    p = sub.add_parser("cohort", help="BMD against age per sex and site: D = -k*age + Z, "
                                      "personal and group statistics (the paper's Figure 7)")
    p.add_argument("csv", nargs="?", metavar="FILE.csv",
                   help="one row per person with columns subject,sex,site,age,bmd")
    p.add_argument("--dataset", help="build the cohort from a dataset's subjects instead "
                                     "(BMD from ground-truth masks, or --model's masks)")
    p.add_argument("--model", help="with --dataset: train this model (with --strategy and the "
                                   "profile's settings) and measure BMD on its predicted masks")
    p.add_argument("--strategy", help="with --model: training strategy (default: profile's)")
    p.add_argument("--profile", default="default",
                   help="with --dataset: quick | default | full (dataset size, training)")
    p.add_argument("--config", metavar="FILE.toml", help="with --dataset: a TOML file merged "
                   "over the profile (e.g. [data.phantom] test_subjects = 40)")
    p.add_argument("--seed", type=int, help="with --dataset: seed (default: profile's)")
    p.add_argument("--steps", type=int, help="with --model: training steps (overrides profile)")
    p.add_argument("--splits", help="with --dataset: comma list of splits to measure, or 'all' "
                                    "(default: all with ground truth; val,test,shift with "
                                    "--model, the subjects it was not trained on)")
    p.add_argument("--stored-values", action="store_true",
                   help="with --dataset: BMD as stored values HU + 1024, as the paper's Z")
    p.add_argument("--plot", metavar="OUT.png", help="write the Figure 7 style plot")
    add_json_option(p)
    p.set_defaults(func=cmd_cohort)


# -- density -----------------------------------------------------------------------------------


def cmd_density(args) -> int:
    from jmedbench.volumes import read_nifti_labels, read_volume

    volume = read_volume(args.image)
    labels = read_nifti_labels(args.mask, volume)
    if args.label is None:
        args.label = default_mask_label(labels)
        if args.label == 1:
            err_console.print(f"{args.mask} is a binary mask (labels 0 and 1): measuring label "
                              f"1 (give --label to choose)", highlight=False)
    try:
        result = bmd_from_mask(volume.hu, labels, label=args.label,
                               stored_values=args.stored_values)
    except UserError as exc:
        raise UserError(f"{args.mask} (label {args.label}) on {args.image}: {exc}") from None
    if args.plot:
        from jmedbench.density.plots import plot_density
        plot_density(result, args.plot, title=f"{volume.source.name}, label {args.label}")
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    for note in result.notes:
        err_console.print(f"[cyan]note:[/cyan] {note}", highlight=False)
    if args.json:
        print_json({"image": str(args.image), "mask": str(args.mask), "label": args.label,
                    "spacing_mm": list(volume.spacing), **result.to_dict(),
                    "plot": args.plot})
        return 0
    fit = result.fit
    table = Table(title=f"BMD of {volume.source.name} (label {args.label})", show_header=False)
    table.add_column("key")
    table.add_column("value", justify="right")
    table.add_row("BMD (Johnson-Su mode)", f"{result.bmd:.2f} {result.unit}")
    table.add_row("standard error", f"{result.mode_se:.2f}")
    table.add_row("pixels", str(result.n_pixels))
    table.add_row("median", f"{result.diagnostics['median_hu'] + result.bmd - result.bmd_hu:.1f}")
    table.add_row("a, b", f"{fit.a:.4f}, {fit.b:.4f}")
    table.add_row("loc, scale", f"{fit.loc + result.bmd - result.bmd_hu:.2f}, {fit.scale:.2f}")
    table.add_row("log-likelihood", f"{fit.loglik:.2f}")
    table.add_row("converged", f"{fit.converged} ({fit.iterations} Newton steps)"
                  + (f", {fit.limit} limit" if fit.limit else ""))
    table.add_row("status", "ok" if result.ok else f"{len(result.warnings)} warning(s)")
    console.print(table)
    if args.plot:
        console.print(f"plot written to {args.plot}", highlight=False)
    return 0


# -- cohort ------------------------------------------------------------------------------------

def cmd_cohort(args) -> int:
    if bool(args.csv) == bool(args.dataset):
        raise UserError("cohort: give either FILE.csv or --dataset NAME (not both, not neither)")
    dataset_only = {"--model": args.model, "--strategy": args.strategy, "--config": args.config,
                    "--seed": args.seed, "--steps": args.steps, "--splits": args.splits,
                    "--stored-values": args.stored_values or None}
    if args.csv:
        used = [name for name, value in dataset_only.items() if value is not None]
        if used:
            raise UserError(f"cohort FILE.csv: {', '.join(used)} only apply with --dataset "
                            f"(the CSV's bmd column is used in its own unit)")
        subjects = read_cohort_csv(args.csv)
        result = cohort_statistics(subjects, source=str(args.csv))
        title = f"cohort {args.csv}"
        extra: dict[str, Any] = {}
    else:
        result, title, extra = _dataset_cohort(args)
    if args.plot:
        from jmedbench.density.plots import plot_cohort
        plot_cohort(result, args.plot, title=title)
    for message in result.skipped + extra.get("left_out", []):
        err_console.print(f"[yellow]warning:[/yellow] left out: {message}", highlight=False)
    if args.json:
        laws = extra.get("law", {})
        print_json([{**g.to_dict(points=False), "unit": result.unit, **extra.get("source", {}),
                     **laws.get((g.sex, g.site), {})}
                    for g in result.groups])
        return 0
    _print_cohort(result, title)
    if extra.get("law"):
        _print_law(result, extra["law"])
    if args.plot:
        console.print(f"plot written to {args.plot}", highlight=False)
    return 0


def _dataset_cohort(args) -> tuple[CohortResult, str, dict[str, Any]]:
    from jmedbench.registry import get_registry  # looked up per call: tests swap registries

    cfg = build_config(args.profile, args.config, {
        "dataset": args.dataset, "seed": args.seed, "model": args.model,
        "strategy": args.strategy, "train.steps": args.steps})
    reporter = RichReporter(err_console) if args.model else Reporter()
    try:
        cohort = dataset_cohort(get_registry(), cfg, with_model=bool(args.model),
                                splits=args.splits, stored_values=args.stored_values,
                                reporter=reporter)
    finally:
        reporter.close()
    return cohort.result, cohort.title, {"left_out": cohort.left_out, "source": cohort.source,
                                         "law": cohort.laws}


def _print_cohort(result: CohortResult, title: str) -> None:
    table = Table(title=f"{title}\nD = -k * age + Z ({result.unit or 'unit of the bmd column'})",
                  box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1), collapse_padding=True)
    for column in ("site", "sex", "statistics", "k", "k 95% CI", "Z", "Z 95% CI", "R²", "n"):
        table.add_column(column, justify="left" if column == "statistics" else "right",
                         no_wrap=True)
    notes = []
    for g in result.groups:
        table.add_row(g.site, g.sex, g.statistics, fmt(g.k, 2),
                      f"{fmt(g.k_ci_low, 2)} to {fmt(g.k_ci_high, 2)}", fmt(g.Z, 1),
                      f"{fmt(g.Z_ci_low, 0)} to {fmt(g.Z_ci_high, 0)}", fmt(g.r2, 3),
                      str(g.n))
        if g.note:
            notes.append(f"{g.sex} {g.site} {g.statistics}: {g.note}")
    console.print(table)
    bin_bmds = sorted({g.bin_bmd for g in result.groups if g.bin_bmd})
    if bin_bmds:
        console.print(f"group statistics: 3-year bins (39-41 -> 40), bin BMD = "
                      f"{' / '.join(bin_bmds)}; n = number of bins", highlight=False)
    for r in result.ratios():
        console.print(f"female/male decline ratio, site {r['site']}, {r['statistics']}: "
                      f"{r['ratio']:.2f} [{fmt(r['ci_low'], 2)}, {fmt(r['ci_high'], 2)}]",
                      highlight=False)
    for note in notes:
        console.print(f"note: {note}", highlight=False)


def _print_law(result: CohortResult, laws: dict) -> None:
    table = Table(title="personal statistics against what generated the data",
                  box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1), collapse_padding=True)
    for column in ("site", "sex", "k", "k 95% CI", "k true BMDs", "k law", "law in CI"):
        table.add_column(column, justify="right", no_wrap=True)
    for g in result.groups:
        law = laws.get((g.sex, g.site))
        if g.statistics != "personal" or not law:
            continue
        k_law = law.get("k_law", float("nan"))
        inside = ("-" if not math.isfinite(k_law) else
                  "yes" if g.k_ci_low <= k_law <= g.k_ci_high else "NO")
        table.add_row(g.site, g.sex, fmt(g.k, 3), f"{fmt(g.k_ci_low, 2)} to "
                      f"{fmt(g.k_ci_high, 2)}", fmt(law.get("k_true"), 3), fmt(k_law, 3),
                      inside)
    console.print(table)
    console.print("k true BMDs: the same regression on the subjects' true BMDs (what a perfect "
                  "measurement gives); k law: the law the dataset was generated from",
                  highlight=False)
