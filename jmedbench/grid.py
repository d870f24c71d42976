"""The model's grid of a CT and the way back: what the ``nifti:`` loader does to a CT to make
the slices a model sees, and its inverse, which ``jmedbench predict`` uses to put a predicted
label map on the CT's own voxel grid.

The model's grid of one CT: a set of its axial slices (the canonical (S, H, W) layout of
:mod:`jmedbench.volumes`, no resampling across slices), each resampled in-plane to
``size`` x ``size`` pixels over a square field of view of ``fov_mm`` around one centre (row,
column in native pixels; one centre per CT so that its slices stay aligned). Output pixel k sits
at (k - (size-1)/2) * fov_mm/size mm from the centre. HU are interpolated linearly, outside the
scan is air (-1024 HU).

Going back (:func:`labels_to_native`), each class's indicator is interpolated linearly at the
native pixel centres and the largest wins (background where the view ends), the same rule the
loader applies when it resamples masks forward; :func:`file_layout` then undoes the canonical
reorientation (axis permutations and flips only), so the result has the CT file's own shape and
affine.

numpy, scipy and nibabel; nothing of jmedbench but the error type and the volume layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from jmedbench.volumes import CTVolume

AIR_HU = -1024.0
# 160 mm holds the whole vertebra (body and posterior elements, about 100 mm front to back),
# the psoas muscles, aorta, crura and rib tips: bone that is not labelled is in view, as in the
# phantom. At image_size 128 a pixel is 1.25 mm, close to the in-plane resolution of clinical CT.
DEFAULT_FOV_MM = 160.0


def resample_slices(slices: np.ndarray, pixel_mm: tuple[float, float], centre_rc: np.ndarray,
                    fov_mm: float, size: int, *, order: int, fill: float) -> np.ndarray:
    """Resample (S, H, W) slices to (S, size, size) float32 over a square ``fov_mm`` around
    ``centre_rc`` (row, column in pixels); output pixel k sits at (k - (size-1)/2) * fov_mm/size
    mm from the centre. ``order`` 1 is linear interpolation; outside the scan is ``fill``."""
    step = fov_mm / size
    offsets = (np.arange(size) - (size - 1) / 2) * step
    rr, cc = np.meshgrid(centre_rc[0] + offsets / pixel_mm[0],
                         centre_rc[1] + offsets / pixel_mm[1], indexing="ij")
    out = np.empty((slices.shape[0], size, size), np.float32)
    for s in range(slices.shape[0]):
        out[s] = ndimage.map_coordinates(slices[s].astype(np.float32, copy=False), [rr, cc],
                                         order=order, mode="constant", cval=fill)
    return out


def patient_centre(hu_slices: np.ndarray) -> np.ndarray:
    """In-plane centroid (row, column) of the largest object denser than -500 HU (the patient)."""
    mask = (hu_slices > -500).any(axis=0)
    pieces, n = ndimage.label(mask)
    if n == 0:
        return np.array(mask.shape, float) / 2
    sizes = ndimage.sum_labels(mask, pieces, index=np.arange(1, n + 1))
    return np.array(ndimage.center_of_mass(pieces == int(np.argmax(sizes)) + 1))


def masks_centre(masks: list[np.ndarray]) -> np.ndarray:
    """In-plane centroid (row, column) of the union of (S, H, W) masks over all their slices
    (the loader's ``center="vertebra"``: the L1/L2 bodies)."""
    return np.array(ndimage.center_of_mass(np.any(masks, axis=(0, 1))))


@dataclass(frozen=True)
class ModelGrid:
    """Where the model's images of one CT come from: ``slices`` (indices into the canonical S
    axis), the in-plane ``centre`` (row, column, native pixels), the native ``pixel_mm`` (row,
    column) and the model's ``fov_mm`` and ``size``."""

    slices: np.ndarray
    centre: np.ndarray
    pixel_mm: tuple[float, float]
    fov_mm: float
    size: int

    @property
    def step_mm(self) -> float:
        return self.fov_mm / self.size

    def images(self, hu: np.ndarray) -> np.ndarray:
        """(len(slices), size, size) HU images of a canonical (S, H, W) volume."""
        return resample_slices(hu[self.slices], self.pixel_mm, self.centre, self.fov_mm,
                               self.size, order=1, fill=AIR_HU)

    def native_position(self, row: float, col: float) -> np.ndarray:
        """Native (row, column) of a point given in model-grid pixels."""
        half = (self.size - 1) / 2
        return np.array([self.centre[0] + (row - half) * self.step_mm / self.pixel_mm[0],
                         self.centre[1] + (col - half) * self.step_mm / self.pixel_mm[1]])


def labels_to_native(labels: np.ndarray, grid: ModelGrid, shape: tuple[int, int, int],
                     num_classes: int) -> np.ndarray:
    """The inverse of :meth:`ModelGrid.images` for label maps: (len(slices), size, size) labels
    on the model's grid -> (S, H, W) uint8 labels of the native canonical volume of ``shape``
    (0 on slices the model did not see and outside its view)."""
    labels = np.asarray(labels)
    if labels.shape != (len(grid.slices), grid.size, grid.size):
        raise ValueError(f"labels {labels.shape} do not match the grid "
                         f"({len(grid.slices)}, {grid.size}, {grid.size})")
    _, height, width = shape
    half = (grid.size - 1) / 2
    rows = (np.arange(height) - grid.centre[0]) * grid.pixel_mm[0] / grid.step_mm + half
    cols = (np.arange(width) - grid.centre[1]) * grid.pixel_mm[1] / grid.step_mm + half
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    # Only the native pixels whose centre falls within the model's view can be labelled.
    inside = (rr > -1) & (rr < grid.size) & (cc > -1) & (cc < grid.size)
    out = np.zeros(shape, np.uint8)
    for k, s in enumerate(grid.slices):
        fractions = np.zeros((num_classes, int(inside.sum())), np.float32)
        fractions[0] = 1.0
        for value in range(1, num_classes):
            indicator = (labels[k] == value).astype(np.float32)
            if not indicator.any():
                continue
            fractions[value] = ndimage.map_coordinates(
                indicator, [rr[inside], cc[inside]], order=1, mode="constant", cval=0.0)
        fractions[0] = 1.0 - fractions[1:].sum(axis=0)
        plane = np.zeros((height, width), np.uint8)
        plane[inside] = np.argmax(fractions, axis=0).astype(np.uint8)
        out[s] = plane
    return out


def file_layout(array_shw: np.ndarray, volume: CTVolume) -> tuple[np.ndarray, np.ndarray]:
    """An (S, H, W) array in ``volume``'s canonical layout -> (array, affine) in the layout of
    the file it was read from: a NIfTI file's own axis order, directions and affine; a DICOM
    series (which has no file affine) in RAS orientation (nibabel's canonical), on the same
    voxel grid. The exact inverse of :func:`jmedbench.volumes.canonical_axial`."""
    import nibabel as nib
    import nibabel.orientations as nio

    shw = np.asarray(array_shw)
    # canonical_axial: shw = ras[::-1, ::-1, :].transpose(2, 1, 0)
    ras = shw.transpose(2, 1, 0)[::-1, ::-1, :]
    nx, ny, _ = ras.shape
    to_ras_index = np.array([[0, 0, -1, nx - 1], [0, -1, 0, ny - 1], [1, 0, 0, 0],
                             [0, 0, 0, 1]], dtype=np.float64)
    affine_ras = volume.affine @ np.linalg.inv(to_ras_index)
    source = volume.source
    if source.is_dir() or not source.exists():
        return np.ascontiguousarray(ras), affine_ras
    original = nib.load(str(source))
    affine = original.affine
    ornt = nio.io_orientation(affine)
    back = nio.ornt_transform(nio.axcodes2ornt(("R", "A", "S")), ornt)
    array = nio.apply_orientation(ras, back)
    return np.ascontiguousarray(array), affine
