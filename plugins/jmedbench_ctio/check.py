"""Sanity figures of one subject folder on its own grid (no resampling):

    python -m jmedbench_ctio.check [DIR] [--erosion-mm 2.0]

DIR holds ct.nii.gz + vertebrae.nii.gz [+ vertebral_bodies.nii.gz]; the default is the built-in
example. Prints the label convention, the L1/L2 slices, the median HU of the derived cancellous
and cortical bone and, where a body mask exists, how well the body-by-opening fallback (used
without one) agrees with it. docs/datasets.md quotes its output for the example.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from jmedbench.errors import UserError
from jmedbench.volumes import read_nifti_labels, read_nifti_volume

from jmedbench_ctio.dataset import (BODIES_NAMES, CT_NAMES, VERTEBRAE_NAMES, _find,
                                    example_data_dir)
from jmedbench_ctio.labels import DEFAULT_EROSION_MM, LabelMapError, l1l2_labels


def subject_figures(directory: Path, erosion_mm: float = DEFAULT_EROSION_MM) -> dict:
    ct_path, vertebrae_path = _find(directory, CT_NAMES), _find(directory, VERTEBRAE_NAMES)
    if ct_path is None or vertebrae_path is None:
        raise UserError(f"{directory}: needs ct.nii.gz and vertebrae.nii.gz")
    bodies_path = _find(directory, BODIES_NAMES)
    ct = read_nifti_volume(ct_path)
    vertebrae = read_nifti_labels(vertebrae_path, ct)
    bodies = read_nifti_labels(bodies_path, ct) if bodies_path else None
    try:
        label, found = l1l2_labels(vertebrae, ct.spacing, body_mask=bodies, erosion_mm=erosion_mm)
    except LabelMapError as exc:
        raise UserError(f"{vertebrae_path}: {exc}") from None
    figures = {
        "directory": str(directory), "spacing_mm": ct.spacing,
        "convention": found.convention.name, "body_source": found.body_source,
        "slices": f"{found.slices.min()}..{found.slices.max()} ({found.slices.size})",
        "cancellous_voxels": int((label == 2).sum()),
        "cancellous_median_hu": float(np.median(ct.hu[label == 2])),
        "cortical_median_hu": float(np.median(ct.hu[label == 1])),
    }
    if bodies is not None:
        by_opening, found_o = l1l2_labels(vertebrae, ct.spacing, erosion_mm=erosion_mm)
        a, b = label > 0, by_opening > 0
        figures["opening_body_dice_vs_mask"] = float(2 * (a & b).sum() / (a.sum() + b.sum()))
        figures["opening_cancellous_median_hu"] = float(np.median(ct.hu[by_opening == 2]))
        figures["opening_slices"] = int(found_o.slices.size)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jmedbench_ctio.check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", nargs="?", type=Path, default=None)
    parser.add_argument("--erosion-mm", type=float, default=DEFAULT_EROSION_MM)
    args = parser.parse_args(argv)
    try:
        figures = subject_figures(args.directory or example_data_dir(), args.erosion_mm)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for key, value in figures.items():
        print(f"{key}: {round(value, 3) if isinstance(value, float) else value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
