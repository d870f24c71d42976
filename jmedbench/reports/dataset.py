"""What a dataset holds, per split (counts, spacing, HU per class, demographics), and a montage
of its slices with label outlines: built from the subjects alone, so it works for any
registered dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jmedbench.data import Dataset, Subject
from jmedbench.errors import UserError
from jmedbench.labels import CANCELLOUS_LABEL, CLASS_NAMES, CORTICAL_LABEL

MONTAGE_WINDOW = (-250.0, 1250.0)  # HU shown black..white: soft tissue and bone both readable
LABEL_COLOURS = {CORTICAL_LABEL: (1.0, 0.2, 0.15, 0.9),     # red
                 CANCELLOUS_LABEL: (0.2, 0.95, 0.3, 0.9)}  # green
PERCENTILE_SAMPLE = 200_000


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
