"""How well HU come back from 8-bit exports and phone photos: bias of the recalibrated HU of
cancellous bone (the BMD region), fat and soft tissue at severity 1 and 3, on phantom slices and
on the real TotalSegmentator example's L1/L2 slices; and the reference tissue levels of that
real CT (air, fat peak, soft-tissue peak), which set the recalibration's reference HU.

    python benchmarks/recalibration_accuracy.py [--size 128]

Numbers quoted in docs/robustness.md come from this script.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "totalseg_example"
NAMES = ["ct_8bit_export", "phone_window_gamma", "phone_moire", "phone_vignetting",
         "phone_colour_cast", "phone_jpeg", "phone_hand_shake", "phone_defocus", "phone_photo"]


def phantom_slices(size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from jmedbench.config import build_config
    from jmedbench.engine.build import build_dataset
    from jmedbench.registry import get_registry

    data = build_dataset(get_registry(), build_config("default",
                                                      overrides={"data.image_size": size}))
    out = []
    for subject in data.split("test"):
        i = int(np.argmax((subject.label == 2).sum(axis=(1, 2))))
        out.append((subject.image[i], subject.label[i]))
    return out


def real_slices(size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """L1/L2 slices of the real CT, rotated to radiological view and padded to a square."""
    import nibabel as nib

    ct = nib.load(REAL / "ct.nii.gz").get_fdata().astype(np.float32)
    bodies = nib.load(REAL / "vertebral_bodies.nii.gz").get_fdata()
    vertebrae = nib.load(REAL / "vertebrae.nii.gz").get_fdata()
    out = []
    for z in range(ct.shape[2]):
        bone = (bodies[..., z] == 1) & np.isin(vertebrae[..., z], [30, 31])  # L2, L1
        if bone.sum() < 40:
            continue
        image = np.full((size, size), -1024.0, np.float32)
        label = np.zeros((size, size), np.uint8)
        rotated = np.rot90(ct[..., z])
        h, w = rotated.shape
        image[:h, :w] = rotated
        label[:h, :w] = np.rot90(bone) * 2
        out.append((image, label))
    return out[::3]


def tissue_levels(slices) -> str:
    """Air, fat peak and soft-tissue peak of the slices (HU), by the body histogram."""
    air, fat, soft = [], [], []
    for image, _ in slices:
        body = ndi.binary_fill_holes(image > -500)
        air.append(np.median(image[~body & (image > -1020)]))
        counts, edges = np.histogram(image[body], bins=np.arange(-250, 150, 5))
        centres = (edges[:-1] + edges[1:]) / 2
        fat.append(centres[centres < -50][np.argmax(counts[centres < -50])])
        soft.append(centres[centres > -20][np.argmax(counts[centres > -20])])
    return (f"air {np.min(air):.0f}..{np.max(air):.0f}, fat peak {np.min(fat):.0f}.."
            f"{np.max(fat):.0f}, soft-tissue peak {np.min(soft):.0f}..{np.max(soft):.0f} HU")


def bias_table(slices, severities=(1, 3), seeds=(0, 1, 2)) -> list[str]:
    from jmedbench.registry import get_registry

    registry = get_registry()
    rows = []
    for name in NAMES:
        spec = registry.corruption(name)
        cells = []
        for severity in severities:
            canc, fat, soft = [], [], []
            for image, label in slices:
                core = ndi.binary_erosion(label == 2, iterations=1)
                fat_mask = (image > -160) & (image < -60)
                soft_mask = (image > 0) & (image < 60) & (label == 0)
                for seed in seeds:
                    out, moved = spec.apply(image, label, severity, np.random.default_rng(seed))
                    moved_core = ndi.binary_erosion(moved == 2, iterations=1)
                    canc.append(out[moved_core].mean() - image[core].mean())
                    if not spec.geometric:
                        fat.append(np.median(out[fat_mask]) - np.median(image[fat_mask]))
                        soft.append(np.median(out[soft_mask]) - np.median(image[soft_mask]))
            fs = (f" fat {np.mean(fat):+4.0f} soft {np.mean(soft):+4.0f}" if fat else
                  " (geometric)")
            cells.append(f"s{severity}: cancellous {np.mean(canc):+5.0f} "
                         f"(|max| {np.max(np.abs(canc)):3.0f}){fs}")
        rows.append(f"  {name:20s} " + " | ".join(cells))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    phantom = phantom_slices(args.size)
    print(f"phantom (default profile test subjects, {args.size} px): "
          f"{tissue_levels(phantom)}")
    print("\n".join(bias_table(phantom)))
    if (REAL / "ct.nii.gz").exists():
        real = real_slices(args.size)
        print(f"real CT (TotalSegmentator example, {len(real)} L1/L2 slices): "
              f"{tissue_levels(real)}")
        print("\n".join(bias_table(real)))


if __name__ == "__main__":
    main()
