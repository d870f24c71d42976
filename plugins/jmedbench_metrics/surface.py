"""Surface metrics per class in mm (spacing-aware), on a slice (2-D) or a subject's slices,
computed as MONAI 1.6 does (``get_mask_edges``, ``get_surface_distance``):

- the boundary of a mask is the mask minus its erosion by the cross (the image's edge counts as
  outside); distances are Euclidean in mm between boundary pixel centres;
- HD95 (``compute_hausdorff_distance(percentile=95)``): the larger of the two directed 95th
  percentiles (linear interpolation);
- ASSD (``compute_average_surface_distance(symmetric=True)``): the mean over both boundaries'
  distances to the other;
- NSD (``compute_surface_dice``, Nikolov et al. 2021): the fraction of both boundaries' pixels
  that lie within ``tolerance`` mm of the other boundary.

Worst cases, where MONAI gives inf or NaN: a mask whose counterpart is empty (a missed structure,
or one predicted where the truth has none) has every boundary pixel at the *worst distance*,
the diagonal of the field of view in mm (``fov_diagonal``: sqrt(sum((n_i * spacing_i)^2)), more
than any two pixels of the image can be apart); so HD95 and ASSD are that diagonal and NSD is
0. Both masks empty: NaN (not scored). The background is not scored (NaN): its boundary is the
image border's.

A subject's slices (:func:`subject_hd95` ...): when they are contiguous, the masks are 3-D
volumes with spacing (z, y, x); otherwise each slice's boundary is taken in 2-D and the
distances of all slices pooled (a slice where only one mask has the class gives its boundary
pixels the slice's worst distance), then the statistic is taken once over the pool.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Callable

import numpy as np
from scipy import ndimage

NSD_TOLERANCE_MM = 1.25
"""NSD's tolerance tau: one pixel of the 128 px view of 160 mm (1.25 mm), the uncertainty of
the labels' boundaries (see docs/metrics.md)."""

Distances = tuple[np.ndarray, np.ndarray]


def boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of the mask that touch the outside (face connectivity, in any dimension)."""
    cross = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, cross, border_value=0)


def fov_diagonal(shape: tuple[int, ...], spacing: tuple[float, ...]) -> float:
    """The diagonal of the field of view in mm: the worst surface distance."""
    return float(np.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing))))


def _directed(source: np.ndarray, target: np.ndarray, spacing: tuple[float, ...],
              worst: float) -> np.ndarray:
    if not source.any():
        return np.empty(0)
    if not target.any():
        return np.full(int(source.sum()), worst)
    return ndimage.distance_transform_edt(~target, sampling=spacing)[source]


CACHE_SIZE = 512
_cache: OrderedDict = OrderedDict()


def _digest(mask: np.ndarray) -> bytes:
    return hashlib.blake2b(np.packbits(mask).tobytes(), digest_size=16).digest()


def surface_distances(pred: np.ndarray, truth: np.ndarray,
                      spacing: tuple[float, ...]) -> Distances | None:
    """(prediction -> truth, truth -> prediction) distances in mm of each boundary pixel of two
    boolean masks; a boundary whose counterpart is empty gets the worst distance; None when
    both masks are empty.

    HD95, ASSD and NSD of the same masks (and a subject's pooled slices after its per-slice
    scores) share one computation: the last ``CACHE_SIZE`` results are kept, keyed by the
    masks' contents, shape and spacing. The arrays returned are shared: do not modify them."""
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    key = (pred.shape, tuple(float(s) for s in spacing), _digest(pred), _digest(truth))
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    _cache[key] = result = _surface_distances(pred, truth, spacing)
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return result


def _surface_distances(pred: np.ndarray, truth: np.ndarray,
                       spacing: tuple[float, ...]) -> Distances | None:
    p, t = boundary(pred), boundary(truth)
    if not p.any() and not t.any():
        return None
    worst = fov_diagonal(pred.shape, spacing)
    return _directed(p, t, spacing, worst), _directed(t, p, spacing, worst)


def pooled_slice_distances(pred: np.ndarray, truth: np.ndarray,
                           spacing: tuple[float, float]) -> Distances | None:
    """:func:`surface_distances` of each (H, W) slice of two (S, H, W) masks, pooled."""
    found = [d for d in (surface_distances(p, t, spacing) for p, t in zip(pred, truth))
             if d is not None]
    if not found:
        return None
    return np.concatenate([d[0] for d in found]), np.concatenate([d[1] for d in found])


def hd95_of(d: Distances) -> float:
    return float(max(np.percentile(x, 95) for x in d if x.size))


def assd_of(d: Distances) -> float:
    return float(np.concatenate(d).mean())


def nsd_of(d: Distances, tolerance: float = NSD_TOLERANCE_MM) -> float:
    pooled = np.concatenate(d)
    return float(np.count_nonzero(pooled <= tolerance) / pooled.size)


def per_class(pred: np.ndarray, target: np.ndarray, num_classes: int,
              distances: Callable[[np.ndarray, np.ndarray], Distances | None],
              statistic: Callable[[Distances], float]) -> np.ndarray:
    """``statistic`` of each foreground class's distances; NaN for the background and where
    both masks are empty."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and truth {target.shape} differ in shape")
    out = np.full(num_classes, np.nan)
    for c in range(1, num_classes):
        d = distances(pred == c, target == c)
        if d is not None:
            out[c] = statistic(d)
    return out


def _image(pred, target, num_classes, spacing, statistic) -> np.ndarray:
    spacing = tuple(spacing) if spacing is not None else (1.0,) * pred.ndim
    return per_class(pred, target, num_classes,
                     lambda p, t: surface_distances(p, t, spacing), statistic)


def _subject(pred, target, num_classes, spacing, contiguous, statistic) -> np.ndarray:
    """Over a subject's (S, H, W) slices: 3-D when contiguous (and more than one slice), else
    per slice in 2-D with the distances pooled."""
    spacing = tuple(spacing) if spacing is not None else (1.0, 1.0, 1.0)
    if contiguous and pred.shape[0] > 1:
        return _image(pred, target, num_classes, spacing, statistic)
    return per_class(pred, target, num_classes,
                     lambda p, t: pooled_slice_distances(p, t, spacing[1:]), statistic)


def hd95(pred, target, num_classes, spacing=None) -> np.ndarray:
    """95th-percentile symmetric Hausdorff distance per class (mm)."""
    return _image(pred, target, num_classes, spacing, hd95_of)


def assd(pred, target, num_classes, spacing=None) -> np.ndarray:
    """Average symmetric surface distance per class (mm)."""
    return _image(pred, target, num_classes, spacing, assd_of)


def nsd(pred, target, num_classes, spacing=None, tolerance=NSD_TOLERANCE_MM) -> np.ndarray:
    """Normalised surface Dice per class at ``tolerance`` mm."""
    return _image(pred, target, num_classes, spacing, lambda d: nsd_of(d, tolerance))


def subject_hd95(pred, target, num_classes, spacing=None, contiguous=False) -> np.ndarray:
    return _subject(pred, target, num_classes, spacing, contiguous, hd95_of)


def subject_assd(pred, target, num_classes, spacing=None, contiguous=False) -> np.ndarray:
    return _subject(pred, target, num_classes, spacing, contiguous, assd_of)


def subject_nsd(pred, target, num_classes, spacing=None, contiguous=False,
                tolerance=NSD_TOLERANCE_MM) -> np.ndarray:
    return _subject(pred, target, num_classes, spacing, contiguous,
                    lambda d: nsd_of(d, tolerance))
