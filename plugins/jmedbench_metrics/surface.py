"""Surface distances per image and class in mm (spacing-aware), as MONAI's
``compute_hausdorff_distance(percentile=95)``: the 95th percentile of the distances from each
boundary pixel of one mask to the other mask's boundary, the larger of the two directions."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_CROSS = ndimage.generate_binary_structure(2, 1)


def boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of the mask that touch the outside (4-connectivity)."""
    return mask & ~ndimage.binary_erosion(mask, _CROSS, border_value=0)


def directed_distances(source: np.ndarray, target: np.ndarray,
                       spacing: tuple[float, float]) -> np.ndarray:
    """Distance (mm) from each boundary pixel of ``source`` to the boundary of ``target``."""
    to_target = ndimage.distance_transform_edt(~boundary(target), sampling=spacing)
    return to_target[boundary(source)]


def per_class(pred, target, num_classes, spacing, measure) -> np.ndarray:
    """``measure(p, t, spacing)`` of each class's masks, in mm; NaN where either mask is empty
    for that class (undefined, as MONAI gives)."""
    spacing = tuple(spacing) if spacing is not None else (1.0, 1.0)
    out = np.full(num_classes, np.nan)
    for c in range(num_classes):
        p, t = pred == c, target == c
        if p.any() and t.any():
            out[c] = measure(p, t, spacing)
    return out


def hd95(pred, target, num_classes, spacing=None) -> np.ndarray:
    return per_class(pred, target, num_classes, spacing, lambda p, t, mm: max(
        np.percentile(directed_distances(p, t, mm), 95),
        np.percentile(directed_distances(t, p, mm), 95)))


def assd(pred, target, num_classes, spacing=None) -> np.ndarray:
    """Average symmetric surface distance (mm)."""
    return per_class(pred, target, num_classes, spacing, lambda p, t, mm: np.concatenate(
        [directed_distances(p, t, mm), directed_distances(t, p, mm)]).mean())
