"""Sim-to-real transfer: train on the phantom, segment real CT.

    python benchmarks/sim_to_real.py [--profile default] [--model unet] [--strategy baseline]
                                     [--real example] [--seed 0] [--steps N] [--json OUT]

Trains one model exactly as ``jmedbench run`` does (the engine's ``train_model``: the profile's
phantom, model, strategy, steps), then predicts every subject of the phantom's own test split
and of each real dataset (``--real``, comma-separated registry names, e.g. ``example`` or
``nifti:DIR``), and prints per dataset: Dice of cancellous and cortical bone (predicted label
map against the reference labels, all slices of a subject pooled), the BMD from the predicted
mask and from the reference mask (``jmedbench.density.bmd_from_mask``, the benchmark's BMD) and
their difference. For a phantom subject the reference BMD is its true BMD as well.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from jmedbench.config import build_config
from jmedbench.density.bmd import bmd_from_mask
from jmedbench.engine.build import build_dataset
from jmedbench.engine.progress import RichReporter
from jmedbench.engine.pipeline import predict_subjects, train_model
from jmedbench.errors import UserError
from jmedbench.registry import get_registry


def dice(prediction: np.ndarray, reference: np.ndarray, label: int) -> float:
    p, r = prediction == label, reference == label
    total = int(p.sum() + r.sum())
    return 2.0 * int((p & r).sum()) / total if total else math.nan


def bmd_or_nan(image: np.ndarray, mask: np.ndarray) -> float:
    try:
        return float(bmd_from_mask(image, mask).bmd_hu)
    except UserError:  # an empty or degenerate predicted mask: no BMD
        return math.nan


def score(model, subjects, batch_size: int, backend, predictions: dict | None = None
          ) -> list[dict]:
    rows = []
    for subject in subjects:
        prediction = predict_subjects(model, [subject.image], batch_size, backend)[0]
        if predictions is not None:
            predictions[subject.subject_id] = (subject, prediction)
        reference_bmd = bmd_or_nan(subject.image, subject.label)
        predicted_bmd = bmd_or_nan(subject.image, prediction)
        rows.append({"subject": subject.subject_id,
                     "dice_cancellous": dice(prediction, subject.label, 2),
                     "dice_cortical": dice(prediction, subject.label, 1),
                     "bmd_reference_hu": reference_bmd, "bmd_predicted_hu": predicted_bmd,
                     "bmd_error_hu": predicted_bmd - reference_bmd,
                     "true_bmd_hu": subject.true_bmd})
    return rows


def draw_montage(shown: dict, path: str, per_subject: int = 8) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for subject, prediction in shown.values():
        picks = np.linspace(0, subject.n_slices - 1, per_subject).round().astype(int)
        rows += [(subject, prediction, i) for i in picks]
    cols = 4
    n = int(math.ceil(len(rows) / cols))
    fig, axes = plt.subplots(n, 2 * cols, figsize=(4 * cols, 2.1 * n), squeeze=False)
    for k, (subject, prediction, i) in enumerate(rows):
        for j, mask in enumerate((subject.label[i], prediction[i])):
            ax = axes[k // cols, 2 * (k % cols) + j]
            ax.imshow(subject.image[i], cmap="gray", vmin=-250, vmax=1250)
            if mask.any():
                ax.contour(mask, levels=[0.5, 1.5], colors=["red", "lime"], linewidths=0.5)
            ax.set_title(f"{subject.subject_id} {i} {'ref' if j == 0 else 'pred'}", fontsize=6)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--model", default="unet")
    parser.add_argument("--strategy", default="baseline")
    parser.add_argument("--real", default="example", help="comma-separated dataset names")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, help="training steps (default: the profile's)")
    parser.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    parser.add_argument("--montage", metavar="PNG",
                        help="also draw the real subjects' slices with reference (left) and "
                             "predicted (right) outlines")
    args = parser.parse_args()
    console = Console()
    registry = get_registry()
    overrides = {"model": args.model, "strategy": args.strategy, "seed": args.seed,
                 "train.steps": args.steps}
    cfg = build_config(args.profile, overrides=overrides)
    reporter = RichReporter()
    start = time.perf_counter()
    try:
        trained = train_model(registry, cfg, reporter)
    finally:
        reporter.close()
    train_seconds = time.perf_counter() - start
    results: dict[str, list[dict]] = {}
    shown: dict = {}
    batch = cfg.eval.batch_size
    results[f"{cfg.dataset} test"] = score(trained.model, trained.dataset.split("test"), batch,
                                           trained.backend)
    for name in [n.strip() for n in args.real.split(",") if n.strip()]:
        real_cfg = build_config(args.profile, overrides={"dataset": name, "seed": args.seed})
        real = build_dataset(registry, real_cfg)
        split = "test" if real.has_split("test") else next(iter(real.splits))
        results[f"{name} {split}"] = score(trained.model, real.split(split), batch,
                                           trained.backend, shown)

    table = Table(title=f"{args.model} / {args.strategy}, profile {args.profile}, seed "
                        f"{args.seed}: trained {train_seconds:.0f} s on the phantom")
    for column in ("dataset", "subjects", "cancellous Dice", "cortical Dice",
                   "BMD ref HU", "BMD pred HU", "|BMD error| HU"):
        table.add_column(column, justify="right" if column != "dataset" else "left")
    for name, rows in results.items():
        errors = [abs(r["bmd_error_hu"]) for r in rows]
        table.add_row(name, str(len(rows)),
                      f"{np.nanmean([r['dice_cancellous'] for r in rows]):.4f}",
                      f"{np.nanmean([r['dice_cortical'] for r in rows]):.4f}",
                      f"{np.nanmean([r['bmd_reference_hu'] for r in rows]):.1f}",
                      f"{np.nanmean([r['bmd_predicted_hu'] for r in rows]):.1f}",
                      f"{np.nanmean(errors):.2f}" if np.isfinite(errors).any() else "n/a")
    console.print(table)
    if args.montage and shown:
        draw_montage(shown, args.montage)
        console.print(f"montage: {args.montage}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"profile": args.profile, "model": args.model, "strategy": args.strategy,
                       "seed": args.seed, "train_seconds": train_seconds, "results": results},
                      fh, indent=2, default=float)


if __name__ == "__main__":
    try:
        main()
    except UserError as exc:
        raise SystemExit(f"error: {exc}") from None
