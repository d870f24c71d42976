"""Reading CT volumes from disk: a NIfTI file or a DICOM series directory -> HU, spacing, affine.

Every reader returns the same canonical layout, so that an axial slice means the same thing
whatever the file's own orientation:

    array (S, H, W) float32 in Hounsfield units
    S: inferior -> superior    H: anterior -> posterior    W: patient's right -> left

which is how a radiologist views an axial slice (anterior up, the patient's right on the viewer's
left) and the row/column order of a standard DICOM axial image. NIfTI files are first brought to
RAS+ with nibabel's closest-canonical logic (axis permutations and flips only, no resampling),
then flipped in x and y; DICOM series go through the same path after their LPS geometry is turned
into a RAS affine. ``spacing`` is (z, y, x) in mm; ``affine`` maps (s, h, w) indices to RAS+
world millimetres.

Only numpy, nibabel and pydicom here: plugins and commands build on it, it builds on nothing of
jmedbench but :class:`~jmedbench.errors.UserError`. Functions:

- :func:`load_volume` ``(path) -> (hu, spacing)``: the short form.
- :func:`read_volume` ``(path) -> CTVolume``: a NIfTI file or a DICOM directory.
- :func:`read_nifti_volume`, :func:`read_dicom_series`: one format each.
- :func:`read_nifti_labels` ``(path, reference) -> int array``: a label map on a volume's grid.
- :func:`canonical_axial` ``(array_xyz, affine) -> (array_shw, affine_shw)``: the reorientation.
- :func:`check_ct_hu`: the "is this a CT in HU" test every reader applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jmedbench.errors import UserError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
# A CT of the body always holds air (about -1000 HU) or at least fat (about -100 HU); an MR, a
# normalised image or stored values without their rescale intercept (HU + 1024) do not.
CT_LOW_HU = -100.0
CT_LOW_PERCENTILE = 0.1
# Label and image grids must agree to this many mm (affines written as float32 differ by ~1e-5).
AFFINE_TOLERANCE_MM = 1e-2
# Slice positions of one DICOM series may jitter a little (float rounding in the headers); beyond
# this fraction of the median step the series is not a regular grid and we refuse it.
SLICE_STEP_TOLERANCE = 0.1


@dataclass
class CTVolume:
    """A CT in the canonical layout (see the module docstring)."""

    hu: np.ndarray                       # (S, H, W) float32
    spacing: tuple[float, float, float]  # (z, y, x) mm
    affine: np.ndarray                   # 4x4, (s, h, w, 1) -> RAS+ mm
    source: Path

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)  # type: ignore[return-value]


def load_volume(path: str | Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """HU volume (S, H, W) float32 and spacing (z, y, x) mm of a NIfTI file or DICOM directory."""
    volume = read_volume(path)
    return volume.hu, volume.spacing


def read_volume(path: str | Path) -> CTVolume:
    """A NIfTI file (.nii/.nii.gz) or a directory holding one DICOM series."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    if path.is_dir():
        return read_dicom_series(path)
    if path.name.endswith(NIFTI_SUFFIXES):
        return read_nifti_volume(path)
    raise UserError(f"{path}: expected a NIfTI file (.nii, .nii.gz) or a DICOM series directory")


# -- orientation -----------------------------------------------------------------------------

def canonical_axial(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient a 3-D array indexed (i, j, k) with a voxel->RAS+ affine to (S, H, W).

    Axis permutations and flips only (nibabel's closest canonical orientation), so values are
    never interpolated. Returns the reoriented array (a view where possible) and its affine.
    """
    import nibabel.orientations as nio

    ornt = nio.io_orientation(affine)
    ras = nio.apply_orientation(array, ornt)
    affine_ras = affine @ nio.inv_ornt_aff(ornt, array.shape)
    nx, ny, _ = ras.shape
    # (s, h, w) -> RAS index (i, j, k) = (nx-1-w, ny-1-h, s): flip x (R->L) and y (A->P).
    to_ras_index = np.array([[0, 0, -1, nx - 1],
                             [0, -1, 0, ny - 1],
                             [1, 0, 0, 0],
                             [0, 0, 0, 1]], dtype=np.float64)
    shw = ras[::-1, ::-1, :].transpose(2, 1, 0)
    return shw, affine_ras @ to_ras_index


def spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size along the three index axes of ``affine`` (lengths of its columns)."""
    sizes = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    return tuple(float(s) for s in sizes)  # type: ignore[return-value]


def check_ct_hu(hu: np.ndarray, source: str | Path) -> None:
    """Raise UserError unless ``hu`` looks like a CT in Hounsfield units."""
    if not np.isfinite(hu).all():
        raise UserError(f"{source}: image holds NaN or infinite values, not a CT in HU")
    low = float(np.percentile(hu, CT_LOW_PERCENTILE))
    if low > CT_LOW_HU:
        raise UserError(
            f"{source}: not a CT in Hounsfield units ({CT_LOW_PERCENTILE}th percentile "
            f"{low:.0f}, but a CT holds air near -1000 HU and fat near -100 HU): an MR, a "
            f"normalised image, or stored values without the rescale intercept?")


# -- NIfTI -----------------------------------------------------------------------------------

def _load_nifti(path: Path):
    import nibabel as nib

    if not path.is_file():
        raise UserError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        image = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for a damaged or foreign file
        raise UserError(f"{path}: cannot be read as NIfTI ({type(exc).__name__}: {exc})") from None
    shape = image.shape
    if len(shape) == 4 and shape[3] == 1:
        image = image.slicer[..., 0]
    elif len(shape) != 3:
        raise UserError(f"{path}: image has {len(shape)} dimensions {tuple(shape)}, expected a "
                        f"3-D volume")
    return image


def _raw_array(image, path: Path) -> np.ndarray:
    dtype = image.get_data_dtype()
    if dtype.fields is not None or np.issubdtype(dtype, np.complexfloating):
        raise UserError(f"{path}: voxel type {dtype} (RGB or complex), expected scalar CT values")
    try:
        return np.asanyarray(image.dataobj)
    except Exception as exc:
        raise UserError(f"{path}: voxel data cannot be read "
                        f"({type(exc).__name__}: {exc})") from None


def read_nifti_volume(path: str | Path) -> CTVolume:
    """A CT stored as NIfTI, values in HU (any scl_slope/scl_inter in the header applied)."""
    path = Path(path)
    image = _load_nifti(path)
    data = _raw_array(image, path).astype(np.float32)
    hu, affine = canonical_axial(data, image.affine)
    hu = np.ascontiguousarray(hu, dtype=np.float32)
    check_ct_hu(hu, path)
    return CTVolume(hu, spacing_of(affine), affine, path)


def read_nifti_labels(path: str | Path, reference: CTVolume) -> np.ndarray:
    """A label map (integers) in ``reference``'s canonical layout, checked to share its grid."""
    path = Path(path)
    image = _load_nifti(path)
    data = _raw_array(image, path)
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.mod(data, 1) == 0):
            raise UserError(f"{path}: label map holds non-integer values, expected integer labels")
    labels, affine = canonical_axial(data.astype(np.int32), image.affine)
    if labels.shape != reference.shape:
        raise UserError(f"{path}: label map shape {labels.shape} does not match image "
                        f"{reference.source.name} shape {reference.shape} (axial S, H, W)")
    if not np.allclose(affine, reference.affine, atol=AFFINE_TOLERANCE_MM):
        raise UserError(f"{path}: label map affine does not match image {reference.source.name} "
                        f"(they are not on the same voxel grid; largest difference "
                        f"{np.abs(affine - reference.affine).max():.3g} mm)")
    return np.ascontiguousarray(labels)


# -- DICOM -----------------------------------------------------------------------------------

def _dicom_files(directory: Path) -> list:
    import pydicom
    from pydicom.errors import InvalidDicomError

    datasets = []
    for file in sorted(p for p in directory.iterdir() if p.is_file()):
        try:
            ds = pydicom.dcmread(str(file))
        except (InvalidDicomError, EOFError, OSError):
            continue  # a README, a thumbnail, DICOMDIR without pixels: not slices
        if "PixelData" not in ds:
            continue
        ds.filename = str(file)
        datasets.append(ds)
    return datasets


def _required(ds, keyword: str):
    value = ds.get(keyword)
    if value is None or value == "":
        raise UserError(f"{ds.filename}: DICOM header lacks {keyword}, needed to place the slice")
    return value


def read_dicom_series(directory: str | Path) -> CTVolume:
    """One CT series from a directory of single-frame DICOM files.

    HU = stored value * RescaleSlope + RescaleIntercept (per file); slices are sorted by the
    projection of ImagePositionPatient on the slice normal (row x column direction), never by
    file name or InstanceNumber; the slice step comes from those positions (it may differ from
    SliceThickness in overlapping reconstructions), the in-plane spacing from PixelSpacing.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: not a directory of DICOM files")
    datasets = _dicom_files(directory)
    if not datasets:
        raise UserError(f"{directory}: no DICOM image files in this directory")
    series = {ds.get("SeriesInstanceUID", "") for ds in datasets}
    if len(series) > 1:
        raise UserError(f"{directory}: holds {len(series)} DICOM series, expected one per "
                        f"directory")
    for ds in datasets:
        modality = ds.get("Modality", "CT")
        if modality != "CT":
            raise UserError(f"{ds.filename}: DICOM Modality is {modality}, expected CT")
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise UserError(f"{ds.filename}: multi-frame DICOM is not supported, expected one "
                            f"file per slice")

    first = datasets[0]
    orientation = np.array(_required(first, "ImageOrientationPatient"), dtype=np.float64)
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    pixel_spacing = np.array(_required(first, "PixelSpacing"), dtype=np.float64)
    shape = (int(first.Rows), int(first.Columns))
    positions = []
    for ds in datasets:
        if not np.allclose(np.array(_required(ds, "ImageOrientationPatient"), float), orientation,
                           atol=1e-4):
            raise UserError(f"{ds.filename}: ImageOrientationPatient differs from "
                            f"{Path(first.filename).name}: not one series")
        if (int(ds.Rows), int(ds.Columns)) != shape or not np.allclose(
                np.array(_required(ds, "PixelSpacing"), float), pixel_spacing):
            raise UserError(f"{ds.filename}: image size or PixelSpacing differs from "
                            f"{Path(first.filename).name}: not one series")
        positions.append(np.array(_required(ds, "ImagePositionPatient"), dtype=np.float64))
    along = np.array([p @ normal for p in positions])
    order = np.argsort(along, kind="stable")
    datasets = [datasets[i] for i in order]
    along, positions = along[order], [positions[i] for i in order]

    if len(datasets) > 1:
        steps = np.diff(along)
        if np.any(steps < 1e-3):
            dup = datasets[int(np.argmin(steps)) + 1].filename
            raise UserError(f"{dup}: two slices at the same position (several acquisitions in "
                            f"one directory?)")
        step = float(np.median(steps))
        if np.any(np.abs(steps - step) > SLICE_STEP_TOLERANCE * step):
            raise UserError(f"{directory}: uneven slice positions (steps {steps.min():.3g} to "
                            f"{steps.max():.3g} mm): missing slices or a mixed series")
    else:
        step = float(first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1.0)

    slices = []
    for ds in datasets:
        try:
            stored = ds.pixel_array
        except Exception as exc:  # no decoder for the transfer syntax, damaged pixel data
            raise UserError(f"{ds.filename}: pixel data cannot be decoded ({type(exc).__name__}: "
                            f"{exc})") from None
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        slices.append(stored.astype(np.float64) * slope + intercept)
    volume_krc = np.stack(slices).astype(np.float32)  # (slice, row, column)

    # Voxel (column, row, slice) -> DICOM patient coordinates (LPS), then to RAS.
    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_dir * pixel_spacing[1]   # along a row = next column
    affine_lps[:3, 1] = col_dir * pixel_spacing[0]   # down a column = next row
    affine_lps[:3, 2] = normal * step
    affine_lps[:3, 3] = positions[0]
    affine_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps
    hu, affine = canonical_axial(volume_krc.transpose(2, 1, 0), affine_ras)
    hu = np.ascontiguousarray(hu, dtype=np.float32)
    check_ct_hu(hu, directory)
    return CTVolume(hu, spacing_of(affine), affine, directory)
