"""``jmedbench predict``: a stored run's model applied to CT volumes, the paper's whole system
on a user's scans: segment the L1/L2 cortical and cancellous bone, fit the Johnson-Su, read the
BMD, and write what ``jmedbench cohort`` reads.

Per CT (a NIfTI file or a DICOM series directory, any orientation and spacing):

1. read it in the canonical axial layout (:mod:`jmedbench.volumes`; refused unless in HU);
2. find the L1/L2 slices and the view's centre: from a vertebra map on the CT's grid (VerSe or
   TotalSegmentator labels, the bodies found as the ``nifti:`` loader finds them,
   :mod:`jmedbench.vertebrae`; centred on the bodies), or from a slice range given by the user
   (centred first on the patient, then on the bone the model found in that view);
3. resample those slices to the model's grid (image size and field of view of its training
   images, :mod:`jmedbench.grid`), predict, and put the labels back on the CT's own voxel grid
   (the inverse resampling, then the file's own orientation);
4. BMD of the predicted cancellous bone on the native HU (the ``density`` command's fit and
   checks, its report and plot).

Files under OUT: ``<subject>/mask.nii.gz`` (0 background, 1 cortical, 2 cancellous),
``<subject>/bmd.json`` (the ``density --json`` report), ``<subject>/density.png``, and over all
CTs ``bmd.csv`` (subject, sex, site, age, bmd, ...: ``jmedbench cohort`` reads it) and
``predict.json`` (run, weights, per-CT results and failures). A CT that fails is one line in
``failures`` and the others go on.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from jmedbench.density.bmd import bmd_from_mask
from jmedbench.engine.backends import get_backend, to_input
from jmedbench.engine.progress import Reporter
from jmedbench.engine.trained import RunModel
from jmedbench.errors import UserError
from jmedbench.grid import ModelGrid, file_layout, labels_to_native, masks_centre, patient_centre
from jmedbench.labels import CANCELLOUS_LABEL, NUM_CLASSES
from jmedbench.store import clean_nan
from jmedbench.vertebrae import LabelMapError, l1l2_bodies
from jmedbench.volumes import NIFTI_SUFFIXES, CTVolume, read_nifti_labels, read_volume

CSV_COLUMNS = ("subject", "sex", "site", "age", "bmd", "unit", "mode_se", "n_pixels",
               "warnings", "slices", "ct", "mask")
GENERIC_CT_NAMES = ("ct", "image", "img")  # <subject>/ct.nii.gz: the folder names the subject


@dataclass
class CTInput:
    """One CT to predict: its file or folder, a vertebra map or a slice range, its subject."""

    ct: Path
    subject: str
    vertebrae: Path | None = None
    slices: tuple[int, int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # sex, age, site from subjects.csv


@dataclass
class PredictResult:
    rows: list[dict[str, Any]]
    failures: list[str]
    csv_path: Path
    summary_path: Path


def subject_name(path: Path) -> str:
    """The subject a CT belongs to: its file name without .nii/.nii.gz (a DICOM folder's name);
    for a generic name such as ct.nii.gz, the folder it is in (``<subject>/ct.nii.gz``)."""
    path = Path(path)
    name = path.name
    for suffix in sorted(NIFTI_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            name = name[:-len(suffix)]
            break
    if name.lower() in GENERIC_CT_NAMES and path.resolve().parent.name:
        return path.resolve().parent.name
    return name


def parse_slices(text: str) -> tuple[int, int]:
    """``FIRST:LAST`` (inclusive, 0-based, counted from the inferior end) -> (first, last)."""
    first, sep, last = text.partition(":")
    try:
        if not sep:
            raise ValueError
        a, b = int(first), int(last)
    except ValueError:
        raise UserError(f"--slices {text!r}: expected FIRST:LAST, two slice numbers "
                        f"(0-based, inclusive, counted from the inferior end)") from None
    if a < 0 or b < a:
        raise UserError(f"--slices {text!r}: need 0 <= FIRST <= LAST")
    return a, b


def check_output_folder(out: Path, overwrite: bool) -> None:
    """Refuse an output folder that holds files unless ``overwrite`` (nothing is deleted then:
    files of the same names are replaced, others stay)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"--out {out}: folder exists and is not empty (give --overwrite to "
                        f"write into it, replacing files of the same names)")


def _locate(ct: CTInput, volume: CTVolume) -> tuple[np.ndarray, np.ndarray | None]:
    """The axial slices to predict and, with a vertebra map, the centre of the L1/L2 bodies."""
    if ct.vertebrae is not None:
        vertebrae = read_nifti_labels(ct.vertebrae, volume)
        try:
            found = l1l2_bodies(vertebrae, volume.spacing)
        except LabelMapError as exc:
            raise UserError(f"{ct.vertebrae}: {exc}") from None
        in_view = [body[found.slices] for body in found.bodies.values()]
        return found.slices, masks_centre(in_view)
    first, last = ct.slices  # type: ignore[misc]
    if last >= volume.shape[0]:
        raise UserError(f"{ct.ct}: --slices {first}:{last} beyond its {volume.shape[0]} axial "
                        f"slices (0 to {volume.shape[0] - 1}, from the inferior end)")
    return np.arange(first, last + 1), None


def _predict(run_model: RunModel, images: np.ndarray, batch_size: int) -> np.ndarray:
    import torch

    backend = get_backend(None, "torch").with_execution(run_model.execution)
    with torch.no_grad():
        return backend.predict(run_model.model, to_input(images), batch_size)


def _bone_centre(labels: np.ndarray, grid: ModelGrid) -> np.ndarray | None:
    """Native (row, column) centre of the largest 3-D piece of predicted bone, or None."""
    pieces, n = ndimage.label(labels > 0)
    if n == 0:
        return None
    sizes = ndimage.sum_labels(labels > 0, pieces, index=np.arange(1, n + 1))
    _, row, col = ndimage.center_of_mass(pieces == int(np.argmax(sizes)) + 1)
    return grid.native_position(row, col)


def segment_ct(run_model: RunModel, ct: CTInput, volume: CTVolume, batch_size: int = 16
               ) -> tuple[np.ndarray, ModelGrid]:
    """(S, H, W) cortical/cancellous labels of ``volume`` on its own canonical grid."""
    slices, centre = _locate(ct, volume)
    pixel_mm = (float(volume.spacing[1]), float(volume.spacing[2]))

    def grid_at(point: np.ndarray) -> ModelGrid:
        return ModelGrid(slices, point, pixel_mm, run_model.fov_mm, run_model.image_size)

    if centre is None:  # no vertebra map: the patient's centre, then the bone found there
        grid = grid_at(patient_centre(volume.hu[slices]))
        labels = _predict(run_model, grid.images(volume.hu), batch_size)
        bone = _bone_centre(labels, grid)
        if bone is not None:
            grid = grid_at(bone)
            labels = _predict(run_model, grid.images(volume.hu), batch_size)
    else:
        grid = grid_at(centre)
        labels = _predict(run_model, grid.images(volume.hu), batch_size)
    return labels_to_native(labels, grid, volume.shape, NUM_CLASSES), grid


def write_label_map(path: Path, labels_shw: np.ndarray, volume: CTVolume) -> Path:
    """A uint8 NIfTI of canonical labels on ``volume``'s own grid (its file's layout)."""
    import nibabel as nib

    array, affine = file_layout(labels_shw.astype(np.uint8), volume)
    image = nib.Nifti1Image(array, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.set_data_dtype(np.uint8)
    nib.save(image, str(path))
    return path


def predict_one(run_model: RunModel, ct: CTInput, out: Path, batch_size: int = 16
                ) -> dict[str, Any]:
    """Segment one CT, write its mask, BMD report and plot under ``out/<subject>/``; the row of
    bmd.csv. Any problem raises UserError naming the file."""
    from jmedbench.density.plots import plot_density

    volume = read_volume(ct.ct)
    labels, grid = segment_ct(run_model, ct, volume, batch_size)
    folder = out / ct.subject
    folder.mkdir(parents=True, exist_ok=True)
    mask_path = write_label_map(folder / "mask.nii.gz", labels, volume)
    slices = f"{int(grid.slices.min())}:{int(grid.slices.max())}"
    try:
        result = bmd_from_mask(volume.hu, labels, label=CANCELLOUS_LABEL)
    except UserError as exc:
        raise UserError(f"{ct.ct}: no BMD from the predicted mask {mask_path} (slices "
                        f"{slices}): {exc}") from None
    plot_density(result, folder / "density.png",
                 title=f"{ct.subject}: run {run_model.run_id}, cancellous L1/L2")
    report = {"image": str(ct.ct), "mask": str(mask_path), "label": CANCELLOUS_LABEL,
              "spacing_mm": list(volume.spacing), **result.to_dict(),
              "plot": str(folder / "density.png"), "run_id": run_model.run_id,
              "subject": ct.subject, "slices": grid.slices.tolist(),
              "centre_rc": [round(float(v), 2) for v in grid.centre],
              "vertebrae": str(ct.vertebrae) if ct.vertebrae else None}
    (folder / "bmd.json").write_text(json.dumps(clean_nan(report), indent=2, default=str) + "\n")
    age = ct.meta.get("age")
    return {"subject": ct.subject, "sex": ct.meta.get("sex", ""),
            "site": ct.meta.get("site", ""), "age": "" if age is None else f"{age:g}",
            "bmd": round(result.bmd, 3), "unit": result.unit, "mode_se": round(result.mode_se, 3),
            "n_pixels": result.n_pixels, "warnings": " | ".join(result.warnings),
            "slices": slices, "ct": str(ct.ct), "mask": str(mask_path)}


def predict_cts(run_model: RunModel, cts: list[CTInput], out: Path, *, batch_size: int = 16,
                reporter: Reporter | None = None) -> PredictResult:
    """Every CT in turn (a failure is recorded in one line and the rest go on), then bmd.csv
    and predict.json over those that gave a BMD."""
    reporter = reporter or Reporter()
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    reporter.start("predict CTs", len(cts))
    for ct in cts:
        try:
            rows.append(predict_one(run_model, ct, out, batch_size))
        except UserError as exc:
            failures.append(str(exc))
        except Exception as exc:  # one CT's unforeseen problem must not lose the others
            failures.append(f"{ct.ct}: {type(exc).__name__}: {exc}")
        reporter.advance("predict CTs", note=ct.subject)
    csv_path = out / "bmd.csv"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    summary_path = out / "predict.json"
    summary = {"run_id": run_model.run_id, "model": run_model.model_name,
               "weights": str(run_model.path), "image_size": run_model.image_size,
               "fov_mm": run_model.fov_mm, "cts": rows, "failures": failures}
    summary_path.write_text(json.dumps(clean_nan(summary), indent=2, default=str) + "\n")
    return PredictResult(rows, failures, csv_path, summary_path)


def check_inputs(cts: list[Path], vertebrae: list[Path] | None, slices: str | None,
                 subjects: dict[str, dict] | None) -> list[CTInput]:
    """The CTs with their vertebra map or slice range and metadata; mistakes in the command
    line (counts, both or neither of --vertebrae and --slices, missing files, two CTs of one
    subject) are one line before anything is read or written."""
    if bool(vertebrae) == bool(slices):
        raise UserError("predict: give --vertebrae MAP (one per CT) or --slices FIRST:LAST, "
                        "to locate L1/L2 (not both, not neither)")
    if vertebrae and len(vertebrae) != len(cts):
        raise UserError(f"--vertebrae given {len(vertebrae)} time(s) for {len(cts)} CT(s): "
                        f"give one vertebra map per CT, in the same order")
    span = parse_slices(slices) if slices else None
    inputs: list[CTInput] = []
    seen: dict[str, Path] = {}
    for k, path in enumerate(cts):
        if not path.exists():
            raise UserError(f"{path}: no such file or directory")
        if vertebrae and not vertebrae[k].is_file():
            raise UserError(f"--vertebrae {vertebrae[k]}: no such file")
        subject = subject_name(path)
        if subject in seen:
            raise UserError(f"{path}: subject '{subject}' already given by {seen[subject]} "
                            f"(each CT writes to OUT/<subject>/; rename one)")
        seen[subject] = path
        meta = dict((subjects or {}).get(subject, {}))
        inputs.append(CTInput(path, subject, vertebrae[k] if vertebrae else None, span, meta))
    return inputs

