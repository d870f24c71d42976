"""Where stored models lose their cancellous Dice on each dataset: which pixels they miss and
which they add, where their edge lies against the label's, and what they predict on
disc-dominated slices.

    python benchmarks/transfer_errors.py RUN_ID [RUN_ID ...] [--store PATH]
        [--datasets phantom,example,example-dicom,tptbox-l3] [--json OUT]

``phantom`` is the test split of the run's own phantom (its profile and seed); any other name
is a dataset as ``--eval-dataset`` takes it, scored on its test split (or its only split).
Prediction is on the CPU in fp32. Columns, for the cancellous class (2) pooled over every
slice of a dataset's subjects:

- recall, precision: of the labelled and of the predicted cancellous pixels;
- missed as cortical / as background: labelled cancellous pixels predicted 1 / 0;
- added from background / from cortical: predicted cancellous pixels labelled 0 / 1;
- edge offset px: the mean signed distance (pixels, positive outside) of the predicted
  cancellous edge from the labelled cancellous region's edge, over edge pixels within 6 px of
  it; 0 when the edges coincide;
- disc slices, FP per slice: on slices with fewer than ``DISC_SLICE_PIXELS`` labelled
  cancellous pixels (discs and the slices next to an endplate), the mean number of predicted
  cancellous pixels outside the label.

docs/phantom.md ("Where the default models go wrong") shows what it found.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from scipy import ndimage

from jmedbench.config import build_config
from jmedbench.engine.backends import get_backend
from jmedbench.engine.build import build_dataset
from jmedbench.engine.pipeline import predict_subjects
from jmedbench.engine.trained import load_run_model
from jmedbench.errors import UserError
from jmedbench.registry import get_registry
from jmedbench.runs import find_run
from jmedbench.store import Store, default_store_location, store_exists

CANCELLOUS = 2
DISC_SLICE_PIXELS = 150
EDGE_REACH_PX = 6


def _edge_offset(mask: np.ndarray) -> np.ndarray:
    """Per pixel, how far an edge through it lies from the edge of ``mask``, in pixels: 0 on
    ``mask``'s own edge pixels, -1 one pixel further in, +1 on the first pixel outside, and so
    on (Euclidean, so diagonal steps count 1.41)."""
    inside = ndimage.distance_transform_edt(mask)
    outside = ndimage.distance_transform_edt(~mask)
    return np.where(mask, 1.0 - inside, outside)


def error_breakdown(predictions: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
    """The module docstring's columns for one dataset: (S, H, W) predicted and reference
    label maps per subject."""
    confusion = np.zeros((3, 3), np.int64)
    offsets: list[np.ndarray] = []
    disc_slices, disc_fp = 0, 0
    for pred, label in zip(predictions, labels):
        np.add.at(confusion, (label.ravel(), pred.ravel()), 1)
        for p, l in zip(pred == CANCELLOUS, label == CANCELLOUS):
            if l.sum() < DISC_SLICE_PIXELS:
                disc_slices += 1
                disc_fp += int((p & ~l).sum())
                continue
            edge = p & ~ndimage.binary_erosion(p)
            if edge.any():
                d = _edge_offset(l)[edge]
                offsets.append(d[np.abs(d) < EDGE_REACH_PX])
    tp = confusion[2, 2]
    labelled, predicted = confusion[2, :].sum(), confusion[:, 2].sum()
    edge = np.concatenate(offsets) if offsets else np.array([])
    return {
        "dice": float(2 * tp / max(1, labelled + predicted)),
        "recall": float(tp / max(1, labelled)),
        "precision": float(tp / max(1, predicted)),
        "missed_as_cortical": int(confusion[2, 1]), "missed_as_background": int(confusion[2, 0]),
        "added_from_background": int(confusion[0, 2]), "added_from_cortical": int(confusion[1, 2]),
        "edge_offset_px": float(edge.mean()) if edge.size else float("nan"),
        "disc_slices": disc_slices,
        "disc_fp_per_slice": float(disc_fp / disc_slices) if disc_slices else float("nan"),
    }


def _subjects(registry, record: dict, name: str) -> list:
    overrides = ({"dataset": record["dataset"], "seed": record["seed"]} if name == "phantom"
                 else {"dataset": name, "seed": 0})
    dataset = build_dataset(registry, build_config(record["profile"], overrides=overrides))
    split = "test" if dataset.has_split("test") else next(iter(dataset.splits))
    return dataset.split(split)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_ID")
    parser.add_argument("--store", default=None, help="results store (default: jmedbench's)")
    parser.add_argument("--datasets", default="phantom,example,example-dicom,tptbox-l3")
    parser.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    registry = get_registry()
    location = args.store or default_store_location()
    if not store_exists(location):
        print(f"error: --store {location}: no results store there", file=sys.stderr)
        return 2
    store = Store(location)
    backend = get_backend(registry, "torch")
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    rows = []
    try:
        for run_id in args.runs:
            record = find_run(store, run_id)
            model = load_run_model(registry, store, record["run_id"]).model
            for name in names:
                subjects = _subjects(registry, record, name)
                predictions = predict_subjects(model, [s.image for s in subjects], 16, backend)
                rows.append({"run_id": record["run_id"], "seed": record["seed"], "dataset": name,
                             **error_breakdown(predictions, [s.label for s in subjects])})
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = Table(title="cancellous errors of stored runs")
    columns = [("seed", "seed"), ("dataset", "dataset"), ("dice", "Dice"), ("recall", "recall"),
               ("precision", "precision"), ("missed_as_cortical", "missed: cort."),
               ("missed_as_background", "missed: bg"), ("added_from_background", "added: bg"),
               ("added_from_cortical", "added: cort."), ("edge_offset_px", "edge px"),
               ("disc_fp_per_slice", "disc FP/slice")]
    for key, header in columns:
        table.add_column(header, justify="left" if key == "dataset" else "right",
                         no_wrap=key == "dataset")
    for r in rows:
        table.add_row(*(f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k])
                        for k, _ in columns))
    Console(width=max(Console().width, 132)).print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
