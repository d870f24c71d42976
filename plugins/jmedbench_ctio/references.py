"""The other real cases beside the repository (``../shared/data``), as evaluation datasets for
realism checks (``jmedbench dataset compare phantom example-dicom``) and transfer tests:

- ``example-dicom``: the example's separate DICOM series (upper abdomen, 0.98 mm pixels, 3 mm
  slices 2 mm apart) with TotalSegmentator's (``--fast``) vertebra prediction; it holds T11 and
  T12, not L1/L2, so those two play their part. No body mask: bodies by anatomy
  (:func:`jmedbench_ctio.labels.body_by_canal`).
- ``tptbox-l3``: a real L3 at 1.5 mm (TPTBox sample) whose body is marked by hand in its
  subregion map (49 border + 50 interior).

Both are one subject in split ``test`` and use the shared cortical/cancellous rule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jmedbench.data import Dataset
from jmedbench.errors import UserError
from jmedbench.volumes import read_nifti_labels, read_volume

from jmedbench_ctio.dataset import (DEFAULT_FOV_MM, _check_options, example_data_dir,
                                    subject_from_bodies)
from jmedbench_ctio.labels import DEFAULT_EROSION_MM, body_by_canal, body_by_opening

TOTALSEG_T12, TOTALSEG_T11 = 32, 33
TPTBOX_L3, TPTBOX_BODY = 22, (49, 50)


def tptbox_dir() -> Path:
    return example_data_dir().parent / "real_vertebrae" / "tptbox_l3"


def _need(path: Path) -> Path:
    if not path.exists():
        raise UserError(f"{path}: real reference data not found (it lives beside the "
                        f"repository in ../shared/data)")
    return path


def _slices_of(bodies: dict[str, np.ndarray]) -> np.ndarray:
    return np.flatnonzero(np.any([b.any(axis=(1, 2)) for b in bodies.values()], axis=0))


def make_example_dicom_dataset(seed: int = 0, image_size: int = 128,
                               erosion_mm: float = DEFAULT_EROSION_MM,
                               fov_mm: float = DEFAULT_FOV_MM, center: str = "vertebra"
                               ) -> Dataset:
    """The example's DICOM series, T11/T12 bodies from TotalSegmentator's prediction."""
    _check_options(erosion_mm, fov_mm, center, image_size)
    root = example_data_dir()
    volume = read_volume(_need(root / "dicom"))
    labels = read_nifti_labels(_need(root / "dicom_vertebrae_pred.nii.gz"), volume)
    pixel = (volume.spacing[1], volume.spacing[2])
    bodies = {}
    for name, value in (("T12", TOTALSEG_T12), ("T11", TOTALSEG_T11)):
        vertebra = labels == value
        if vertebra.any():
            body = body_by_canal(vertebra, pixel)
            bodies[name] = body if body is not None else body_by_opening(vertebra, pixel)
    subject = subject_from_bodies(
        "totalseg_dicom", volume.hu, volume.spacing, bodies, _slices_of(bodies),
        image_size=image_size, erosion_mm=erosion_mm, fov_mm=fov_mm, center=center,
        site="totalseg-dicom", meta={"vertebrae": "T11/T12 (TotalSegmentator --fast)",
                                     "body_source": "canal"})
    return Dataset({"test": [subject]}, name="example-dicom",
                   info={"path": str(root / "dicom"), "image_size": image_size,
                         "licence": "Apache-2.0 (TotalSegmentator test data)"})


def make_tptbox_dataset(seed: int = 0, image_size: int = 128,
                        erosion_mm: float = DEFAULT_EROSION_MM, fov_mm: float = DEFAULT_FOV_MM,
                        center: str = "vertebra") -> Dataset:
    """A real L3 with its manually marked body (TPTBox sample, 1.5 mm)."""
    _check_options(erosion_mm, fov_mm, center, image_size)
    root = tptbox_dir()
    volume = read_volume(_need(root / "sub-ct_label-22_ct.nii.gz"))
    vertebrae = read_nifti_labels(_need(root / "sub-ct_seg-vert_label-22_msk.nii.gz"), volume)
    subregions = read_nifti_labels(_need(root / "sub-ct_seg-subreg_label-22_msk.nii.gz"),
                                   volume)
    bodies = {"L3": (vertebrae == TPTBOX_L3) & np.isin(subregions, TPTBOX_BODY)}
    subject = subject_from_bodies(
        "tptbox_l3", volume.hu, volume.spacing, bodies, _slices_of(bodies),
        image_size=image_size, erosion_mm=erosion_mm, fov_mm=fov_mm, center=center,
        site="tptbox", meta={"vertebrae": "L3", "body_source": "manual subregions 49+50"})
    return Dataset({"test": [subject]}, name="tptbox-l3",
                   info={"path": str(root), "image_size": image_size,
                         "licence": "Apache-2.0 (TPTBox test data)"})
