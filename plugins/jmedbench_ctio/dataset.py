"""Real CT as jmedbench datasets: the built-in ``example`` and ``nifti:<dir>`` (layout in
docs/datasets.md).

A subject is one CT with its vertebra label map; it becomes the stack of axial slices through
the L1/L2 vertebral bodies, each resampled to ``image_size`` x ``image_size`` pixels over a
square field of view of ``fov_mm`` centred on the L1/L2 bodies (one centre per subject, so the
slices of a subject stay aligned). HU are interpolated linearly; outside the scan is air
(-1024 HU, label 0). The bodies are resampled too, and cortical/cancellous bone are split on
that output grid.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from jmedbench.data import Dataset, Subject
from jmedbench.errors import UserError
# The resampling to the model's grid and the subjects.csv reader are the core's, shared with
# `jmedbench predict` (which applies the resampling in reverse).
from jmedbench.grid import AIR_HU, DEFAULT_FOV_MM, masks_centre, resample_slices  # noqa: F401
from jmedbench.grid import patient_centre as _patient_centre
from jmedbench.subjects import read_subjects_csv as _read_subjects_csv
from jmedbench.volumes import CTVolume, read_nifti_labels, read_nifti_volume

from jmedbench_ctio.labels import (DEFAULT_EROSION_MM, DEFAULT_OPENING_MM, LabelMapError,
                                   l1l2_bodies, split_bodies)

CT_NAMES = ("ct.nii.gz", "ct.nii")
VERTEBRAE_NAMES = ("vertebrae.nii.gz", "vertebrae.nii")
BODIES_NAMES = ("vertebral_bodies.nii.gz", "vertebral_bodies.nii")
SUBJECTS_CSV = "subjects.csv"
CENTRES = ("vertebra", "patient")

EXAMPLE_ENV = "JMEDBENCH_EXAMPLE_DATA"
EXAMPLE_SUBJECT = {"subject_id": "totalseg_example", "sex": "M", "age": 55.0,
                   "site": "totalseg"}


def example_data_dir() -> Path:
    """$JMEDBENCH_EXAMPLE_DATA, else ../shared/data/totalseg_example beside the repository."""
    if os.environ.get(EXAMPLE_ENV):
        return Path(os.environ[EXAMPLE_ENV])
    repo_root = Path(__file__).resolve().parents[2]
    return repo_root.parent / "shared" / "data" / "totalseg_example"


def _find(directory: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (directory / name).is_file():
            return directory / name
    return None


def _check_options(erosion_mm: float, fov_mm: float, center: str, image_size: int) -> None:
    if not erosion_mm > 0:
        raise UserError(f"dataset option erosion_mm={erosion_mm}: must be > 0 mm")
    if not fov_mm > 0:
        raise UserError(f"dataset option fov_mm={fov_mm}: must be > 0 mm")
    if center not in CENTRES:
        raise UserError(f"dataset option center='{center}': use one of {', '.join(CENTRES)}")
    if image_size < 1:
        raise UserError(f"image_size {image_size}: must be positive")


def load_subject(directory: Path, *, subject_id: str, image_size: int,
                 convention: str = "auto", erosion_mm: float = DEFAULT_EROSION_MM,
                 opening_mm: float = DEFAULT_OPENING_MM, fov_mm: float = DEFAULT_FOV_MM,
                 center: str = "vertebra", use_body_mask: bool = True, site: str = "",
                 sex: str | None = None, age: float | None = None) -> Subject:
    """One subject folder -> a :class:`Subject` of its L1/L2 axial slices."""
    ct_path = _find(directory, CT_NAMES)
    if ct_path is None:
        raise UserError(f"{directory / CT_NAMES[0]}: no such file (each subject folder needs "
                        f"a CT and a vertebra label map)")
    vertebrae_path = _find(directory, VERTEBRAE_NAMES)
    if vertebrae_path is None:
        raise UserError(f"{directory / VERTEBRAE_NAMES[0]}: no such file (the vertebra label map "
                        f"of {ct_path.name})")
    bodies_path = _find(directory, BODIES_NAMES) if use_body_mask else None

    volume: CTVolume = read_nifti_volume(ct_path)
    vertebrae = read_nifti_labels(vertebrae_path, volume)
    bodies = read_nifti_labels(bodies_path, volume) if bodies_path else None
    try:
        found = l1l2_bodies(vertebrae, volume.spacing, body_mask=bodies, convention=convention,
                            opening_mm=opening_mm)
    except LabelMapError as exc:
        raise UserError(f"{bodies_path if exc.in_body_mask else vertebrae_path}: {exc}") from None

    return subject_from_bodies(
        subject_id, volume.hu, volume.spacing, found.bodies, found.slices,
        image_size=image_size, erosion_mm=erosion_mm, fov_mm=fov_mm, center=center, site=site,
        sex=sex, age=age,
        meta={"ct": str(ct_path), "vertebrae": str(vertebrae_path),
              "vertebral_bodies": str(bodies_path) if bodies_path else None,
              "convention": found.convention.name, "body_source": found.body_source,
              "vertebrae_per_slice": ["+".join(v) for v in found.vertebrae_per_slice]})


def subject_from_bodies(subject_id: str, hu_volume: np.ndarray, spacing: tuple, bodies: dict,
                        slices: np.ndarray, *, image_size: int, erosion_mm: float,
                        fov_mm: float, center: str, site: str = "", sex: str | None = None,
                        age: float | None = None, meta: dict | None = None) -> Subject:
    """A :class:`Subject` from a canonical (S, H, W) HU volume and its vertebral bodies (name
    -> (S, H, W) mask): the axial ``slices`` resampled to the output grid, labels split there
    by the shared rule."""
    pixel_mm = (spacing[1], spacing[2])
    hu = hu_volume[slices]
    in_view = {name: body[slices] for name, body in bodies.items()}
    if center == "vertebra":
        centre = masks_centre(list(in_view.values()))
    else:
        centre = _patient_centre(hu)
    image = resample_slices(hu, pixel_mm, centre, fov_mm, image_size, order=1, fill=AIR_HU)
    # Body masks are resampled as fractions and cut at one half (a smooth outline, unlike
    # nearest neighbour on coarse voxels); a pixel claimed by both vertebrae goes to the larger
    # fraction. Cortex and cancellous bone are then split on the output grid, so the cortical
    # rim is erosion_mm wide at the resolution the models see.
    fractions = {name: resample_slices(mask, pixel_mm, centre, fov_mm, image_size, order=1,
                                       fill=0.0) for name, mask in in_view.items()}
    stacked = np.stack(list(fractions.values()))
    winner = np.argmax(stacked, axis=0)
    resampled = {name: (stacked[i] >= 0.5) & (winner == i) for i, name in enumerate(fractions)}
    step = fov_mm / image_size
    label = split_bodies(resampled, (step, step), erosion_mm)
    indices = np.asarray(slices)
    return Subject(
        subject_id, image, label, (spacing[0], step, step), site=site, sex=sex, age=age,
        contiguous=bool(indices.size > 1 and np.all(np.diff(indices) == 1)),
        meta={**(meta or {}), "erosion_mm": erosion_mm, "fov_mm": fov_mm, "center": center,
              "native_spacing": tuple(spacing), "slice_indices": np.asarray(slices).tolist()})


# -- the built-in example ----------------------------------------------------------------------

def make_example_dataset(seed: int = 0, image_size: int = 128, convention: str = "auto",
                         erosion_mm: float = DEFAULT_EROSION_MM,
                         opening_mm: float = DEFAULT_OPENING_MM, fov_mm: float = DEFAULT_FOV_MM,
                         center: str = "vertebra", use_body_mask: bool = True) -> Dataset:
    """TotalSegmentator's test CT (one man, 55) as split ``test``: an evaluation case only.

    ``seed`` is accepted for the common factory signature; nothing here is random.
    """
    _check_options(erosion_mm, fov_mm, center, image_size)
    directory = example_data_dir()
    if not directory.is_dir():
        raise UserError(f"{directory}: example data not found (set ${EXAMPLE_ENV} to the "
                        f"totalseg_example folder)")
    meta = dict(EXAMPLE_SUBJECT)
    subject = load_subject(directory, subject_id=meta.pop("subject_id"), image_size=image_size,
                           convention=convention, erosion_mm=erosion_mm, opening_mm=opening_mm,
                           fov_mm=fov_mm, center=center, use_body_mask=use_body_mask, **meta)
    return Dataset({"test": [subject]}, name="example",
                   info={"path": str(directory), "image_size": image_size,
                         "erosion_mm": erosion_mm, "fov_mm": fov_mm,
                         "licence": "Apache-2.0 (TotalSegmentator test data)"})


# -- a user's folder ---------------------------------------------------------------------------

def split_subject_ids(ids: list[str], seed: int, val_fraction: float, test_fraction: float
                      ) -> dict[str, list[str]]:
    """Seeded split by subject. One subject goes to ``test`` (an evaluation case); from two on
    at least one is trained on and one tested."""
    ids = sorted(ids)
    n = len(ids)
    if n == 1:
        return {"train": [], "val": [], "test": ids}
    order = [ids[i] for i in np.random.default_rng([seed, 404]).permutation(n)]
    n_test = min(n - 1, max(1, int(round(n * test_fraction))))
    n_val = min(n - 1 - n_test, int(round(n * val_fraction)))
    return {"test": order[:n_test], "val": order[n_test:n_test + n_val],
            "train": order[n_test + n_val:]}


def make_nifti_dataset(path: str, seed: int = 0, image_size: int = 128,
                       convention: str = "auto", erosion_mm: float = DEFAULT_EROSION_MM,
                       opening_mm: float = DEFAULT_OPENING_MM, fov_mm: float = DEFAULT_FOV_MM,
                       center: str = "vertebra", use_body_mask: bool = True,
                       val_fraction: float = 0.15, test_fraction: float = 0.25,
                       shift_site: str = "") -> Dataset:
    """Subjects from ``<path>/<subject>/ct.nii.gz`` + ``vertebrae.nii.gz`` (see docs).

    Subjects of ``shift_site`` (from subjects.csv) form the ``shift`` split; the rest are split
    into train/val/test by subject with ``seed``.
    """
    _check_options(erosion_mm, fov_mm, center, image_size)
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise UserError(f"dataset option {name}={value}: must be in [0, 1)")
    root = Path(path).expanduser()
    if not root.exists():
        raise UserError(f"{root}: no such directory")
    if not root.is_dir():
        raise UserError(f"{root}: not a directory (expected <dir>/<subject>/ct.nii.gz)")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and _find(p, CT_NAMES))
    if not folders:
        raise UserError(f"{root}: no subject folders holding ct.nii.gz (expected "
                        f"<dir>/<subject>/ct.nii.gz and vertebrae.nii.gz)")
    csv_path = root / SUBJECTS_CSV
    metadata = _read_subjects_csv(csv_path) if csv_path.is_file() else {}

    subjects = {}
    for folder in folders:
        meta = {"site": "", **metadata.get(folder.name, {})}
        subjects[folder.name] = load_subject(
            folder, subject_id=folder.name, image_size=image_size, convention=convention,
            erosion_mm=erosion_mm, opening_mm=opening_mm, fov_mm=fov_mm, center=center,
            use_body_mask=use_body_mask, **meta)
    shifted = sorted(k for k, s in subjects.items() if shift_site and s.site == shift_site)
    if shift_site and not shifted:
        sites = sorted({s.site for s in subjects.values()})
        raise UserError(f"dataset option shift_site='{shift_site}': no subject of that site in "
                        f"{csv_path} (sites: {', '.join(repr(s) for s in sites)})")
    rest = [k for k in subjects if k not in shifted]
    ids = split_subject_ids(rest, seed, val_fraction, test_fraction) if rest else {}
    if shifted:
        ids["shift"] = shifted
    splits = {split: [subjects[k] for k in members] for split, members in ids.items()}
    return Dataset(splits, name=f"nifti:{root}",
                   info={"path": str(root), "seed": seed, "image_size": image_size,
                         "erosion_mm": erosion_mm, "fov_mm": fov_mm})
