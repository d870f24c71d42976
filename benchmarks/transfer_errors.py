"""Where stored models lose their cancellous Dice on each dataset: which pixels they miss and
which they add, where their edge lies against the label's, and what they predict on
disc-dominated slices.

    python benchmarks/transfer_errors.py RUN_ID [RUN_ID ...] [--store PATH]
        [--datasets example,example-dicom,tptbox-l3] [--json OUT]

Each run is rebuilt with the configuration it ran with and scored on the test split of the
dataset it trained on, then on each of ``--datasets`` with the subjects ``--eval-dataset``
would score (every labelled subject it did not train or validate on). Prediction is on the CPU
in fp32. Columns, for the cancellous class pooled over every slice of a dataset's subjects:

- recall, precision: of the labelled and of the predicted cancellous pixels;
- missed as cortical / as background: labelled cancellous pixels predicted cortical / 0;
- added from background / from cortical: predicted cancellous pixels labelled 0 / cortical;
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

from jmedbench.cancellous import CANCELLOUS, CORTICAL
from jmedbench.engine.backends import get_backend
from jmedbench.engine.build import build_dataset
from jmedbench.engine.export import stored_config
from jmedbench.engine.pipeline import predict_subjects
from jmedbench.engine.run import evaluation_subjects
from jmedbench.engine.trained import load_run_model
from jmedbench.errors import UserError
from jmedbench.realism import signed_distance
from jmedbench.registry import get_registry
from jmedbench.runs import find_run
from jmedbench.store import Store, default_store_location, store_exists

BACKGROUND = 0
DISC_SLICE_PIXELS = 150
EDGE_REACH_PX = 6


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
                # 0 on the label's own edge pixels (half a pixel inside its outline)
                d = signed_distance(l, 1.0)[edge] + 0.5
                offsets.append(d[np.abs(d) < EDGE_REACH_PX])
    tp = confusion[CANCELLOUS, CANCELLOUS]
    labelled, predicted = confusion[CANCELLOUS, :].sum(), confusion[:, CANCELLOUS].sum()
    edge = np.concatenate(offsets) if offsets else np.array([])
    return {
        "dice": float(2 * tp / max(1, labelled + predicted)),
        "recall": float(tp / max(1, labelled)),
        "precision": float(tp / max(1, predicted)),
        "missed_as_cortical": int(confusion[CANCELLOUS, CORTICAL]),
        "missed_as_background": int(confusion[CANCELLOUS, BACKGROUND]),
        "added_from_background": int(confusion[BACKGROUND, CANCELLOUS]),
        "added_from_cortical": int(confusion[CORTICAL, CANCELLOUS]),
        "edge_offset_px": float(edge.mean()) if edge.size else float("nan"),
        "disc_slices": disc_slices,
        "disc_fp_per_slice": float(disc_fp / disc_slices) if disc_slices else float("nan"),
    }


def _scored_sets(registry, record: dict, names: list[str], loaded: dict) -> list[tuple[str, list]]:
    """(name, subjects) of a run: its own dataset's test split, then each of ``names`` as
    ``--eval-dataset`` scores it. ``loaded`` keeps the datasets built for earlier runs with the
    same data options (a real dataset is read once, not once per run)."""
    cfg = stored_config(record)
    own = build_dataset(registry, cfg)
    sets = [(f"{record['dataset']} test", own.split("test"))]
    for name in names:
        key = (name, repr(cfg.data))
        if key not in loaded:
            loaded[key] = build_dataset(registry, cfg, name)
        sets.append((name, evaluation_subjects(loaded[key], own)[0]))
    return sets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_ID")
    parser.add_argument("--store", default=None, help="results store (default: jmedbench's)")
    parser.add_argument("--datasets", default="example,example-dicom,tptbox-l3",
                        help="comma-separated datasets as --eval-dataset takes them")
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
    rows, loaded = [], {}
    try:
        for run_id in args.runs:
            record = find_run(store, run_id)
            model = load_run_model(registry, store, record["run_id"]).model
            for name, subjects in _scored_sets(registry, record, names, loaded):
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
