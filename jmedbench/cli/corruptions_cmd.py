"""``jmedbench corruptions show`` (a gallery of one slice under every corruption and severity)
and ``jmedbench corruptions plot RUN_ID`` (a stored run's Dice and BMD error against severity,
per family, with its table)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from jmedbench.cli.common import (add_json_option, add_store_option, console, err_console, fmt,
                                  print_json)
from jmedbench.errors import UserError

DISPLAY_WINDOW = (-1000.0, 1500.0)  # HU shown black .. white: air, fat, soft tissue and bone


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
    show.add_argument("--dataset", default="phantom",
                      help="dataset to take the slice from (default phantom)")
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


# -- gallery -----------------------------------------------------------------------------------
def gallery_slice(dataset: str = "phantom", size: int = 128, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The middle slice of the first test subject (or first subject) of a dataset."""
    from jmedbench.config import build_config
    from jmedbench.engine.build import build_dataset
    from jmedbench.registry import get_registry

    cfg = build_config("quick", overrides={"data.image_size": size, "seed": seed,
                                           "dataset": dataset})
    data = build_dataset(get_registry(), cfg)
    split = next((s for s in ("test", "train", "shift", "val") if data.has_split(s)), None)
    if split is None:
        raise UserError(f"dataset '{dataset}' has no subjects to show")
    subject = data.split(split)[0]
    # The slice with the most cancellous bone: the vertebral body at its widest.
    index = int(np.argmax((subject.label == 2).sum(axis=(1, 2))))
    return subject.image[index].astype(np.float32), subject.label[index].astype(np.uint8)


def render_gallery(image: np.ndarray, label: np.ndarray, specs: list, severities: list[int],
                   out: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write a grid: one row per corruption, the clean slice then each severity, with the
    label map's outline (cortical red, cancellous yellow)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jmedbench.engine.robustness import corruption_rng

    columns = 1 + len(severities)
    fig, axes = plt.subplots(len(specs), columns, figsize=(1.6 * columns, 1.7 * len(specs)),
                             squeeze=False)
    for row, spec in enumerate(specs):
        panels = [(image, label, "clean")]
        for severity in severities:
            out_image, out_label = spec.apply(image, label, severity,
                                              corruption_rng(seed, spec.name, severity))
            panels.append((out_image, out_label, f"s{severity}"))
        for col, (img, lab, title) in enumerate(panels):
            ax = axes[row][col]
            ax.imshow(img, cmap="gray", vmin=DISPLAY_WINDOW[0], vmax=DISPLAY_WINDOW[1],
                      interpolation="nearest")
            if (lab > 0).any():
                ax.contour(lab > 0, levels=[0.5], colors="red", linewidths=0.6)
            if (lab == 2).any():
                ax.contour(lab == 2, levels=[0.5], colors="yellow", linewidths=0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=7)
            if col == 0:
                ax.set_ylabel(f"{spec.name}\n({spec.family}, {spec.density})", fontsize=6)
    fig.suptitle(f"window {DISPLAY_WINDOW[0]:.0f}..{DISPLAY_WINDOW[1]:.0f} HU; outline: label "
                 "map after the corruption (red bone, yellow cancellous)", fontsize=7)
    fig.tight_layout()
    out = Path(out)
    if out.parent and not out.parent.exists():
        raise UserError(f"--out {out}: folder {out.parent} does not exist")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return {"out": str(out), "corruptions": [s.name for s in specs], "severities": severities}


def cmd_show(args) -> int:
    from jmedbench.registry import get_registry
    from jmedbench.engine.robustness import check_severities, resolve_corruptions

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


# -- severity plot of a stored run -------------------------------------------------------------
def stored_robustness(record: dict[str, Any]) -> dict[str, Any]:
    robust = (record.get("details") or {}).get("robustness")
    if not robust or "table" not in robust:
        raise UserError(f"run {record['run_id']} has no robustness results (run it with "
                        "`jmedbench run ... --robustness`)")
    return robust


def render_severity_plot(robust: dict[str, Any], out: str | Path, title: str) -> None:
    """Dice (and, where scored, BMD MAE) against severity, one line per family; severity 0 is
    the clean score on the same subjects."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = robust["table"]
    families = sorted({r["family"] for r in table})
    severities = robust["protocol"]["severities"]
    has_bmd = any(r.get("bmd_mae") is not None for r in table)
    fig, axes = plt.subplots(1, 2 if has_bmd else 1, figsize=(10 if has_bmd else 5.5, 4),
                             squeeze=False)
    panels = [("dice", "Dice (mean over corruptions)")]
    if has_bmd:
        panels.append(("bmd_mae", "BMD MAE vs ground-truth mask, HU"))
    for ax, (key, ylabel) in zip(axes[0], panels):
        clean = robust["clean"].get(key)
        for family in families:
            ys = []
            for severity in severities:
                values = [r.get(key) for r in table if r["family"] == family
                          and r["severity"] == severity and r.get(key) is not None]
                ys.append(float(np.mean(values)) if values else np.nan)
            xs = [0] + list(severities)
            ax.plot(xs, [clean if clean is not None else np.nan] + ys, marker="o", label=family)
        ax.set_xlabel("severity (0 = clean)")
        ax.set_ylabel(ylabel)
        ax.set_xticks([0] + list(severities))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def cmd_plot(args) -> int:
    from jmedbench.store import Store

    store = Store(args.store)
    record = store.get_run(args.run_id)
    robust = stored_robustness(record)
    out = Path(args.out or f"robustness-{record['run_id']}.png")
    if out.parent and not out.parent.exists():
        raise UserError(f"--out {out}: folder {out.parent} does not exist")
    metrics = record.get("metrics") or {}
    title = (f"run {record['run_id']}: {record['model']} / {record['strategy']} / "
             f"{record['dataset']} ({record['profile']}); mPC {fmt(metrics.get('mpc_dice'), 3)}, "
             f"rPC {fmt(metrics.get('rpc_dice'), 3)}, mCE {fmt(metrics.get('mce'), 3)}")
    render_severity_plot(robust, out, title)
    if args.json:
        print_json({"run_id": record["run_id"], "out": str(out),
                    "summary": {k: v for k, v in metrics.items()
                                if k.startswith(("mpc_", "rpc_", "mce"))},
                    "mce": robust.get("mce"), "table": robust["table"]})
        return 0
    severities = robust["protocol"]["severities"]
    table = Table(title=f"Dice under corruption, run {record['run_id']} (clean "
                        f"{fmt(robust['clean'].get('dice'), 3)})")
    for column in ["corruption", "family", "density"] + [f"s{s}" for s in severities] + ["CE"]:
        table.add_column(column, justify="left" if column in ("corruption", "family",
                                                             "density") else "right")
    for name, row in robust["corruptions"].items():
        by_severity = dict(zip(row["severities"], row["dice"]))
        table.add_row(name, row["family"], row["density"],
                      *[fmt(by_severity.get(s), 3) for s in severities], fmt(row["ce"], 3))
    console.print(table)
    mce = robust.get("mce") or {}
    if mce.get("reason"):
        console.print(f"mCE: {mce['reason']}", highlight=False)
    err_console.print(f"wrote {out}", highlight=False)
    return 0
