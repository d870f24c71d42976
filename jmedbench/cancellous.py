"""The one definition of cortical and cancellous bone used by every dataset.

Given the vertebral body on one axial slice (a boolean mask on the grid the models see), the
cancellous bone is the body's interior deeper than ``erosion_mm`` below the outline and the
cortical label is the rest of the body (the rim). Real data (``jmedbench_ctio``: vertebra masks
from VerSe / TotalSegmentator) and the phantom (``jmedbench_phantom``: a body mask from its
fine-grid truth, a pixel being body when at least half its slab is body) both call
:func:`split_body`, so a label means the same thing wherever it comes from. docs/datasets.md
explains the rule and the 2 mm default.

numpy and scipy only.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

CORTICAL, CANCELLOUS = 1, 2
DEFAULT_EROSION_MM = 2.0
BODY_FRACTION = 0.5
"""A pixel belongs to the body when at least this fraction of it (of its voxel, for
fine-grid truth or resampled masks) is body."""


def split_body(body: np.ndarray, pixel_mm: tuple[float, float],
               erosion_mm: float = DEFAULT_EROSION_MM) -> np.ndarray:
    """Cortical (1) and cancellous (2) labels of one vertebral body on one axial slice.

    Cancellous = body pixels whose centre lies deeper than ``erosion_mm`` inside the body
    outline, measured in mm with an exact Euclidean distance transform that knows the pixel
    size (``pixel_mm`` = (row, column) spacing). The outline sits half a pixel outside the
    centres of the outermost pixels, hence the half-pixel correction. The outermost ring of
    pixels is cortical whatever ``erosion_mm`` (at the edge a pixel mixes bone and soft tissue).
    Cortical = body minus cancellous. Raises ValueError for ``erosion_mm`` <= 0.
    """
    if not erosion_mm > 0:
        raise ValueError(f"erosion_mm must be > 0, got {erosion_mm}")
    body = np.asarray(body, dtype=bool)
    out = np.zeros(body.shape, np.uint8)
    if not body.any():
        return out
    # Pad so that a body touching the image edge is still measured from its outline.
    padded = np.pad(body, 1)
    depth = ndimage.distance_transform_edt(padded, sampling=pixel_mm)[1:-1, 1:-1]
    half_pixel = 0.5 * min(pixel_mm)
    outline = body & ~ndimage.binary_erosion(padded)[1:-1, 1:-1]
    cancellous = body & (depth > erosion_mm + half_pixel) & ~outline
    out[body] = CORTICAL
    out[cancellous] = CANCELLOUS
    return out


def bodies_from_fractions(fractions: list[np.ndarray]) -> list[np.ndarray]:
    """Per-vertebra body masks from per-vertebra body fractions on one grid: a pixel is body
    where its fraction reaches :data:`BODY_FRACTION`, and a pixel claimed by two vertebrae goes
    to the larger fraction."""
    if not fractions:
        return []
    stacked = np.stack(fractions)
    winner = np.argmax(stacked, axis=0)
    return [(stacked[i] >= BODY_FRACTION) & (winner == i) for i in range(len(fractions))]


def split_bodies_2d(bodies: list[np.ndarray], pixel_mm: tuple[float, float],
                    erosion_mm: float = DEFAULT_EROSION_MM) -> np.ndarray:
    """Labels 0/1/2 of one slice from several vertebrae's body masks, each split on its own
    (where two bodies touch, the contact is cortical: an end plate)."""
    shape = bodies[0].shape if bodies else (0, 0)
    label = np.zeros(shape, np.uint8)
    for body in bodies:
        if body.any():
            label = np.maximum(label, split_body(body, pixel_mm, erosion_mm))
    return label
