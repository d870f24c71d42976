"""Real CT: volume readers (jmedbench.volumes), label conventions and L1/L2 labels
(jmedbench_ctio), the `example` and `nifti:` datasets, and every bad input.

The shared example (TotalSegmentator's test CT) lives outside the repository; tests that need
it are skipped, saying so, where ../shared/data/totalseg_example is absent.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset as DicomDataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from jmedbench.config import build_config
from jmedbench.engine.build import build_dataset
from jmedbench.errors import UserError
from jmedbench.volumes import load_volume, read_dicom_series, read_nifti_labels, read_volume
from jmedbench_ctio.labels import (TOTALSEGMENTATOR, VERSE, LabelMapError, body_by_canal,
                                   body_by_opening,
                                   detect_convention, l1l2_labels, resolve_convention,
                                   split_body)

from conftest import SHARED_DATA

needs_example = pytest.mark.skipif(
    not (SHARED_DATA / "ct.nii.gz").is_file(),
    reason=f"shared example CT not found at {SHARED_DATA} (it lives beside the repository, "
           f"in ../shared/data/totalseg_example)")


@pytest.fixture(scope="module")
def example_dicom():
    """The example's DICOM series, decoded once (JPEG 2000: a few seconds)."""
    if not (SHARED_DATA / "dicom").is_dir():
        pytest.skip(f"shared example DICOM series not found at {SHARED_DATA / 'dicom'}")
    return read_volume(SHARED_DATA / "dicom")


# -- helpers -----------------------------------------------------------------------------------

def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def synthetic_ct(shape=(40, 36, 12)) -> np.ndarray:
    """(x, y, z) int16 HU: air around a soft-tissue cylinder with a fat ring and a bone disc."""
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    r = np.hypot(x - shape[0] / 2, y - shape[1] / 2)
    plane = np.full(shape[:2], -1000, np.int16)
    plane[r < 16] = -100
    plane[r < 14] = 40
    plane[np.hypot(x - shape[0] / 2, y - shape[1] / 2 + 6) < 5] = 300
    return np.repeat(plane[:, :, None], shape[2], axis=2)


def write_dicom_series(directory: Path, stored: np.ndarray, *, row_dir, col_dir, origin_lps,
                       pixel_mm=(0.8, 0.7), step_mm=2.5, slope=2.0, intercept=-1100.0,
                       modality="CT", order=None) -> list[Path]:
    """stored: (slices, rows, cols) uint16, slice k at origin + k*step along row x col."""
    directory.mkdir(parents=True, exist_ok=True)
    normal = np.cross(row_dir, col_dir)
    series = generate_uid()
    files = []
    order = range(stored.shape[0]) if order is None else order
    for n, k in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = DicomDataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID = modality, series
        ds.InstanceNumber = n + 1  # deliberately unrelated to the position
        ds.Rows, ds.Columns = stored.shape[1:]
        ds.PixelSpacing = [pixel_mm[0], pixel_mm[1]]
        ds.SliceThickness = 5.0  # deliberately not the step between positions
        ds.ImageOrientationPatient = [*map(float, row_dir), *map(float, col_dir)]
        ds.ImagePositionPatient = [float(v) for v in np.asarray(origin_lps) + k * step_mm * normal]
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.ascontiguousarray(stored[k], dtype=np.uint16).tobytes()
        path = directory / f"slice_{n:03d}.dcm"
        pydicom.dcmwrite(str(path), ds, enforce_file_format=True)
        files.append(path)
    return files


def disc(shape, centre, radius_mm, pixel_mm):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return np.hypot((yy - centre[0]) * pixel_mm[0], (xx - centre[1]) * pixel_mm[1]) < radius_mm


# -- volumes: NIfTI ------------------------------------------------------------------------------

@needs_example
def test_example_nifti_reads_in_canonical_axial_layout():
    raw_image = nib.load(str(SHARED_DATA / "ct.nii.gz"))
    assert nib.aff2axcodes(raw_image.affine) == ("R", "A", "S")  # what the file is
    raw = np.asarray(raw_image.dataobj)
    hu, spacing = load_volume(SHARED_DATA / "ct.nii.gz")
    assert hu.dtype == np.float32 and hu.shape == (112, 101, 122)
    assert spacing == (3.0, 3.0, 3.0)
    # (s, h, w) = (inferior->superior, anterior->posterior, right->left) of the RAS array.
    nx, ny, _ = raw.shape
    for s, h, w in [(0, 0, 0), (50, 20, 70), (111, 100, 121)]:
        assert hu[s, h, w] == raw[nx - 1 - w, ny - 1 - h, s]
    assert np.median(hu[hu < -500]) == pytest.approx(-1000, abs=30)  # air, HU not offset


def test_reading_does_not_depend_on_the_file_orientation(tmp_path):
    ct = synthetic_ct()
    ras_affine = np.diag([0.7, 0.8, 2.5, 1.0])
    ras_affine[:3, 3] = (-10, 20, 30)
    ct[35, 30, 10] = 2000  # a marker at the right (high x), anterior (high y), superior corner
    as_ras = read_volume(write_nifti(tmp_path / "ras.nii.gz", ct, ras_affine))
    # The same voxels written as P-I-L (axes permuted and flipped), same world positions.
    target = nib.orientations.axcodes2ornt(("P", "I", "L"))
    ornt = nib.orientations.ornt_transform(nib.orientations.io_orientation(ras_affine), target)
    pil = nib.orientations.apply_orientation(ct, ornt)
    pil_affine = ras_affine @ nib.orientations.inv_ornt_aff(ornt, ct.shape)
    assert nib.aff2axcodes(pil_affine) == ("P", "I", "L")
    as_pil = read_volume(write_nifti(tmp_path / "pil.nii.gz", pil, pil_affine))
    np.testing.assert_array_equal(as_ras.hu, as_pil.hu)
    np.testing.assert_allclose(as_ras.affine, as_pil.affine, atol=1e-6)
    assert as_ras.spacing == as_pil.spacing == pytest.approx((2.5, 0.8, 0.7))
    # Superior slice, anterior row (top), patient's right column (left of the image).
    s, h, w = np.argwhere(as_ras.hu == 2000)[0]
    assert (s, h, w) == (10, 36 - 1 - 30, 40 - 1 - 35)
    world = as_ras.affine @ [s, h, w, 1]
    np.testing.assert_allclose(world[:3], ras_affine[:3, :3] @ [35, 30, 10] + ras_affine[:3, 3])


# -- volumes: DICOM ------------------------------------------------------------------------------

def test_dicom_series_hu_order_and_spacing_from_headers(tmp_path):
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 3000, size=(6, 9, 11)).astype(np.uint16)
    stored[:, 0, 0] = 0  # air after rescale: 0 * 2 - 1100
    shuffled = [3, 0, 5, 1, 4, 2]
    write_dicom_series(tmp_path / "s", stored, row_dir=(1, 0, 0), col_dir=(0, 1, 0),
                       origin_lps=(-50.0, -40.0, -300.0), order=shuffled)
    volume = read_dicom_series(tmp_path / "s")
    # Standard axial DICOM rows/columns are already (anterior->posterior, right->left).
    np.testing.assert_array_equal(volume.hu, stored.astype(np.float32) * 2.0 - 1100.0)
    assert volume.spacing == pytest.approx((2.5, 0.8, 0.7))  # step from positions, not 5 mm
    np.testing.assert_allclose(volume.affine @ [0, 0, 0, 1], [50.0, 40.0, -300.0, 1])


def test_dicom_and_nifti_of_the_same_scan_agree(tmp_path):
    """One world geometry written as a DICOM series (LPS, two in-plane orientations) and as a
    RAS NIfTI: all three read to the same HU array, spacing and affine."""
    shape_shw = (5, 12, 10)
    hu = np.random.default_rng(1).integers(-1024, 2000, size=shape_shw).astype(np.int16)
    dr, dc, dz = 0.8, 0.7, 2.5
    x0, y0, z0 = -50.0, -40.0, -300.0
    stored = (hu + 1024).astype(np.uint16)
    write_dicom_series(tmp_path / "std", stored, row_dir=(1, 0, 0), col_dir=(0, 1, 0),
                       origin_lps=(x0, y0, z0), pixel_mm=(dr, dc), step_mm=dz, slope=1.0,
                       intercept=-1024.0)
    ny, nx = shape_shw[1:]
    write_dicom_series(tmp_path / "flipped", stored[:, ::-1, ::-1], row_dir=(-1, 0, 0),
                       col_dir=(0, -1, 0), origin_lps=(x0 + (nx - 1) * dc, y0 + (ny - 1) * dr, z0),
                       pixel_mm=(dr, dc), step_mm=dz, slope=1.0, intercept=-1024.0)
    ras = hu.transpose(2, 1, 0)[::-1, ::-1, :]  # (i, j, k) with i -> R, j -> A, k -> S
    affine = np.diag([dc, dr, dz, 1.0])
    affine[:3, 3] = (-x0 - (nx - 1) * dc, -y0 - (ny - 1) * dr, z0)
    nifti = read_volume(write_nifti(tmp_path / "ct.nii.gz", np.ascontiguousarray(ras), affine))
    for name in ("std", "flipped"):
        dicom = read_volume(tmp_path / name)
        np.testing.assert_array_equal(dicom.hu, hu.astype(np.float32))
        np.testing.assert_array_equal(dicom.hu, nifti.hu)
        np.testing.assert_allclose(dicom.affine, nifti.affine, atol=1e-6)
        assert dicom.spacing == pytest.approx(nifti.spacing)


def test_example_dicom_series_geometry_and_decoding(example_dicom):
    files = sorted((SHARED_DATA / "dicom").iterdir())
    volume = example_dicom
    assert volume.hu.shape == (20, 512, 512) and volume.hu.dtype == np.float32
    # 3 mm thick slices reconstructed every 2 mm: the step comes from the positions.
    assert volume.spacing == pytest.approx((2.0, 0.9765625, 0.9765625))
    # Sorted inferior -> superior by position, whatever the file names say.
    positions = sorted(float(pydicom.dcmread(str(f), stop_before_pixels=True)
                             .ImagePositionPatient[2]) for f in files)
    assert volume.affine[2, 3] == pytest.approx(positions[0])
    # The JPEG 2000 pixel data decode to the range the headers state, per slice.
    for f in files:
        header = pydicom.dcmread(str(f), stop_before_pixels=True)
        k = positions.index(float(header.ImagePositionPatient[2]))
        assert volume.hu[k].max() == float(header.LargestImagePixelValue) - 1024.0
        assert volume.hu[k].min() == float(header.SmallestImagePixelValue) - 1024.0


def _histogram_mode(values: np.ndarray, low: float, high: float, width: float = 10.0) -> float:
    counts, edges = np.histogram(values, bins=np.arange(low, high + width, width))
    return float(edges[np.argmax(counts)] + width / 2)


@needs_example
def test_example_dicom_and_nifti_use_the_same_hu_scale(example_dicom):
    """The DICOM series is another scan (a contrast-enhanced PET/CT of the upper abdomen, other
    frame of reference) than the NIfTI, so voxels cannot be compared. What both must share is
    the HU scale: air near -1000 and subcutaneous/visceral fat near -100, and dense bone. Soft
    tissue is not compared: contrast lifts the DICOM's liver and vessels to about 100 HU."""
    nifti, _ = load_volume(SHARED_DATA / "ct.nii.gz")
    dicom = example_dicom.hu
    stats = {}
    for name, hu in (("nifti", nifti), ("dicom", dicom)):
        stats[name] = {"air": float(np.median(hu[hu < -500])),
                       "fat": _histogram_mode(hu, -200, -30),
                       "bone_p999": float(np.percentile(hu, 99.9))}
        assert stats[name]["air"] == pytest.approx(-1000, abs=30), (name, stats)
        assert -130 <= stats[name]["fat"] <= -60, (name, stats)
        assert stats[name]["bone_p999"] > 700, (name, stats)  # no +1024 offset, no rescaling
    assert abs(stats["nifti"]["fat"] - stats["dicom"]["fat"]) <= 40, stats


# -- label conventions ---------------------------------------------------------------------------

@needs_example
def test_example_labels_are_totalsegmentator():
    ct = read_volume(SHARED_DATA / "ct.nii.gz")
    vertebrae = read_nifti_labels(SHARED_DATA / "vertebrae.nii.gz", ct)
    assert detect_convention(vertebrae) is TOTALSEGMENTATOR


def test_convention_detection_on_synthetic_maps():
    verse = np.zeros((3, 8, 8), np.int32)
    verse[0, 2:4, 2:4], verse[2, 2:4, 2:4], verse[1, 5:7, 5:7] = 20, 21, 19  # L1, L2, T12
    assert detect_convention(verse) is VERSE
    # A full TotalSegmentator map also holds 20 (colon) and 21 (bladder): still TotalSegmentator.
    total = np.zeros((3, 8, 8), np.int32)
    total[0, 0, 0], total[0, 0, 1], total[1, 2:4, 2:4], total[2, 2:4, 2:4] = 20, 21, 30, 31
    assert detect_convention(total) is TOTALSEGMENTATOR
    with pytest.raises(LabelMapError, match="neither VerSe"):
        detect_convention(np.array([[[0, 5, 12]]]))
    with pytest.raises(LabelMapError, match="no L1 \\(31\\) or L2 \\(30\\)"):
        resolve_convention(verse, "totalsegmentator")
    thoracic_only = np.zeros((2, 8, 8), np.int32)
    thoracic_only[0, 2:4, 2:4], thoracic_only[1, 2:4, 2:4] = 32, 33  # TotalSegmentator T12, T11
    with pytest.raises(LabelMapError, match="no L1 \\(31\\) or L2 \\(30\\)"):
        resolve_convention(thoracic_only)


def test_verse_map_gives_l1_l2_labels():
    spacing = (3.0, 0.5, 0.5)
    vertebrae = np.zeros((6, 100, 100), np.int32)
    body = disc((100, 100), (50, 50), 15.0, spacing[1:])
    for s, value in ((0, 19), (1, 20), (2, 20), (3, 21), (4, 21), (5, 22)):
        vertebrae[s][body] = value
    label, found = l1l2_labels(vertebrae, spacing)
    assert found.convention is VERSE and found.body_source == "opening"
    assert found.slices.tolist() == [1, 2, 3, 4]
    assert found.vertebrae_per_slice == [("L1",), ("L1",), ("L2",), ("L2",)]
    assert not label[[0, 5]].any()
    for s in range(1, 5):
        np.testing.assert_array_equal(label[s] > 0, body)
        assert (label[s] == 2).any() and (label[s] == 1).any()


# -- L1/L2 slices and the cortical / cancellous split ------------------------------------------

@needs_example
def test_example_l1_l2_slices_and_cancellous_inside_body():
    ct = read_volume(SHARED_DATA / "ct.nii.gz")
    vertebrae = read_nifti_labels(SHARED_DATA / "vertebrae.nii.gz", ct)
    bodies = read_nifti_labels(SHARED_DATA / "vertebral_bodies.nii.gz", ct)
    label, found = l1l2_labels(vertebrae, ct.spacing, body_mask=bodies)
    # Independently from the raw RAS files (canonical slice s = raw k): slices holding L1 (31)
    # or L2 (30) voxels that the body mask marks 1.
    raw_v = np.asarray(nib.load(str(SHARED_DATA / "vertebrae.nii.gz")).dataobj)
    raw_b = np.asarray(nib.load(str(SHARED_DATA / "vertebral_bodies.nii.gz")).dataobj)
    l1_body, l2_body = (raw_v == 31) & (raw_b == 1), (raw_v == 30) & (raw_b == 1)
    expected = np.flatnonzero((l1_body | l2_body).any(axis=(0, 1)))
    assert found.slices.tolist() == expected.tolist()
    assert {v for vs in found.vertebrae_per_slice for v in vs} == {"L1", "L2"}
    assert int((label > 0).sum()) == int((l1_body | l2_body).sum())  # labels = the two bodies
    body = (np.isin(vertebrae, [30, 31])) & (bodies == 1)
    outside = np.setdiff1d(np.arange(label.shape[0]), found.slices)
    assert not label[outside].any()
    np.testing.assert_array_equal(label > 0, body)  # cortical + cancellous = body
    assert (label == 2).sum() > 0.4 * body.sum()
    # Cancellous pixels never touch the outside of the body in-plane.
    from scipy import ndimage
    for s in found.slices:
        touching = ndimage.binary_dilation(~body[s]) & body[s]
        assert not (touching & (label[s] == 2)).any()


@needs_example
def test_example_cancellous_hu_is_plausible_for_a_55_year_old_man(capsys):
    """Real-data sanity check: the median HU of the derived L1+L2 cancellous bone."""
    ct = read_volume(SHARED_DATA / "ct.nii.gz")
    vertebrae = read_nifti_labels(SHARED_DATA / "vertebrae.nii.gz", ct)
    bodies = read_nifti_labels(SHARED_DATA / "vertebral_bodies.nii.gz", ct)
    label, _ = l1l2_labels(vertebrae, ct.spacing, body_mask=bodies)
    median = float(np.median(ct.hu[label == 2]))
    with capsys.disabled():
        print(f"\nexample L1+L2 cancellous median: {median:.1f} HU over "
              f"{(label == 2).sum()} voxels")
    assert 100 <= median <= 250
    assert median < float(np.median(ct.hu[label == 1]))  # cortex denser than the core


@pytest.mark.parametrize("pixel_mm", [(0.25, 0.5), (0.5, 0.25)])
@pytest.mark.parametrize("erosion_mm", [3.0, 5.0])
def test_erosion_depth_is_physical(pixel_mm, erosion_mm):
    """A 20 mm-radius disc on anisotropic pixels eroded by d mm leaves a disc of 20 - d mm."""
    radius = 20.0
    shape = (int(50 / pixel_mm[0]), int(50 / pixel_mm[1]))
    centre = ((shape[0] - 1) / 2, (shape[1] - 1) / 2)
    body = disc(shape, centre, radius, pixel_mm)
    label = split_body(body, pixel_mm, erosion_mm)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    r = np.hypot((yy - centre[0]) * pixel_mm[0], (xx - centre[1]) * pixel_mm[1])
    tolerance = max(pixel_mm)  # one pixel of the coarser axis
    assert r[label == 2].max() == pytest.approx(radius - erosion_mm, abs=tolerance)
    assert r[label == 1].min() == pytest.approx(radius - erosion_mm, abs=tolerance)
    # Along each axis separately: the cancellous extent is the same in mm, not in pixels.
    row, col = label[int(centre[0])], label[:, int(centre[1])]
    half_x = (row == 2).sum() * pixel_mm[1] / 2
    half_y = (col == 2).sum() * pixel_mm[0] / 2
    assert half_x == pytest.approx(radius - erosion_mm, abs=tolerance)
    assert half_y == pytest.approx(radius - erosion_mm, abs=tolerance)
    np.testing.assert_array_equal(label > 0, body)


def test_outline_is_cortical_even_for_a_shallow_erosion():
    body = disc((20, 20), (9.5, 9.5), 24.0, (3.0, 3.0))
    label = split_body(body, (3.0, 3.0), erosion_mm=0.5)  # less than half a 3 mm pixel
    assert label[body].min() >= 1
    from scipy import ndimage
    outline = body & ~ndimage.binary_erosion(body)
    assert (label[outline] == 1).all() and (label == 2).any()


def test_body_by_opening_cuts_posterior_elements():
    pixel = (0.5, 0.5)
    shape = (3, 160, 160)
    body = disc(shape[1:], (60, 80), 18.0, pixel)
    arch = np.zeros(shape[1:], bool)
    arch[95:150, 76:84] = True  # a 4 mm wide spinous process behind the body
    vertebra = np.zeros(shape, bool)
    vertebra[0], vertebra[1], vertebra[2] = body | arch, body | arch, arch  # 2: below the body
    found = body_by_opening(vertebra, pixel, radius_mm=5.0)
    for s in (0, 1):
        dice = 2 * (found[s] & body).sum() / (found[s].sum() + body.sum())
        assert dice > 0.97
    assert not found[2].any()


TPTBOX = SHARED_DATA.parent / "real_vertebrae" / "tptbox_l3"
needs_tptbox = pytest.mark.skipif(not (TPTBOX / "sub-ct_label-22_ct.nii.gz").is_file(),
                                  reason=f"real vertebra sample not found at {TPTBOX}")


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@needs_tptbox
def test_body_by_canal_matches_the_manual_body_of_a_real_l3():
    """A real L3 (1.5 mm, TPTBox sample) whose subregion map marks its body (49 border,
    50 interior): the body found in front of the spinal canal agrees with it."""
    ct = read_volume(TPTBOX / "sub-ct_label-22_ct.nii.gz")
    vertebra = read_nifti_labels(TPTBOX / "sub-ct_seg-vert_label-22_msk.nii.gz", ct) == 22
    subregions = read_nifti_labels(TPTBOX / "sub-ct_seg-subreg_label-22_msk.nii.gz", ct)
    reference = vertebra & np.isin(subregions, [49, 50])
    pixel = (ct.spacing[1], ct.spacing[2])
    found = body_by_canal(vertebra, pixel)
    assert found is not None
    dice = _dice(found, reference)
    print(f"body by canal vs manual body: Dice {dice:.4f}; "
          f"by opening {_dice(body_by_opening(vertebra, pixel), reference):.4f}")
    assert dice >= 0.90
    # the posterior elements (41-48) stay out of the body
    assert (found & np.isin(subregions, range(41, 49))).sum() < 0.02 * found.sum()


def test_body_by_canal_cuts_pedicles_and_arch_off_a_ring_vertebra():
    pixel = (0.5, 0.5)
    shape = (3, 160, 160)
    body = disc(shape[1:], (55, 80), 17.0, pixel)
    arch = np.zeros(shape[1:], bool)
    arch[84:118, 58:66] = arch[84:118, 94:102] = True  # pedicles and laminae around a canal
    arch[110:118, 58:102] = True
    arch[118:150, 76:84] = True  # the spinous process
    vertebra = np.zeros(shape, bool)
    vertebra[0], vertebra[1], vertebra[2] = body | arch, body | arch, arch
    found = body_by_canal(vertebra, pixel)
    for s in (0, 1):
        assert _dice(found[s], body) > 0.97
    assert not found[2].any()
    assert body_by_canal(body[None], pixel) is None  # no canal: the caller falls back


@needs_example
def test_body_by_canal_agrees_with_the_examples_body_mask():
    ct = read_volume(SHARED_DATA / "ct.nii.gz")
    vertebrae = read_nifti_labels(SHARED_DATA / "vertebrae.nii.gz", ct)
    bodies = read_nifti_labels(SHARED_DATA / "vertebral_bodies.nii.gz", ct)
    with_mask, _ = l1l2_labels(vertebrae, ct.spacing, body_mask=bodies)
    by_anatomy, found = l1l2_labels(vertebrae, ct.spacing)
    assert found.body_source == "canal"
    dice = _dice(with_mask > 0, by_anatomy > 0)
    print(f"example: body by canal vs body mask Dice {dice:.4f}")
    assert dice >= 0.95


# -- datasets through the registry ---------------------------------------------------------------

@needs_example
def test_example_dataset_builds_through_the_registry(registry):
    cfg = build_config("quick", overrides={"data.image_size": 64})
    dataset = build_dataset(registry, cfg, "example")
    assert list(dataset.splits) == ["test"] and not dataset.has_split("train")
    (subject,) = dataset.split("test")
    assert subject.sex == "M" and subject.age == 55.0
    assert subject.image.shape[1:] == (64, 64) and subject.image.dtype == np.float32
    assert subject.label.dtype == np.uint8 and set(np.unique(subject.label)) == {0, 1, 2}
    assert subject.spacing == pytest.approx((3.0, 160 / 64, 160 / 64))
    assert subject.meta["convention"] == "totalsegmentator"
    assert subject.meta["body_source"] == "mask"
    assert subject.n_slices == len(subject.meta["slice_indices"])
    assert np.all((subject.label > 0).any(axis=(1, 2)))  # every slice shows L1 or L2
    median = float(np.median(subject.image[subject.label == 2]))
    assert 100 <= median <= 250  # resampling keeps the cancellous HU plausible


@needs_example
def test_example_dataset_path_from_environment(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("JMEDBENCH_EXAMPLE_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="nowhere"):
        build_dataset(registry, build_config("quick"), "example")


def _example_subject_folder(folder: Path, with_bodies: bool = True) -> Path:
    folder.mkdir(parents=True)
    names = ["ct.nii.gz", "vertebrae.nii.gz"] + (["vertebral_bodies.nii.gz"] if with_bodies
                                                 else [])
    for name in names:
        os.symlink(SHARED_DATA / name, folder / name)
    return folder


@needs_example
def test_nifti_dataset_splits_by_subject_and_site(registry, tmp_path):
    root = tmp_path / "cohort"
    for name in ("a1", "a2", "b1"):
        _example_subject_folder(root / name, with_bodies=name != "a2")
    (root / "subjects.csv").write_text("subject,sex,age,site\na1,male,60,A\na2,F,71,A\n"
                                       "b1,M,44,B\nunused,F,50,A\n")
    cfg = build_config("quick", overrides={"data.image_size": 32})
    cfg.data.options["nifti"] = {"shift_site": "B", "test_fraction": 0.5, "val_fraction": 0.0}
    dataset = build_dataset(registry, cfg, f"nifti:{root}")
    ids = {split: [s.subject_id for s in subs] for split, subs in dataset.splits.items()}
    assert ids["shift"] == ["b1"]
    assert sorted(ids["train"] + ids["test"]) == ["a1", "a2"] and len(ids["test"]) == 1
    every = [i for members in ids.values() for i in members]
    assert len(every) == len(set(every)) == 3
    subjects = {s.subject_id: s for subs in dataset.splits.values() for s in subs}
    assert (subjects["a2"].sex, subjects["a2"].age, subjects["a2"].site) == ("F", 71.0, "A")
    assert subjects["a1"].sex == "M"
    # no vertebral_bodies file: the body comes from the vertebra map, by anatomy
    assert subjects["a2"].meta["body_source"] == "canal"
    assert subjects["a1"].image.shape[1:] == (32, 32)
    again = build_dataset(registry, cfg, f"nifti:{root}")
    assert {k: [s.subject_id for s in v] for k, v in again.splits.items()} == ids


# -- bad input: one UserError naming the file ----------------------------------------------------

@pytest.fixture
def ct_file(tmp_path):
    affine = np.diag([0.7, 0.7, 2.5, 1.0])
    return write_nifti(tmp_path / "ct.nii.gz", synthetic_ct(), affine), affine


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_missing_file(tmp_path):
    with pytest.raises(UserError) as exc:
        read_volume(tmp_path / "absent.nii.gz")
    assert "absent.nii.gz" in _one_line(exc)


def test_subject_folder_without_label_map(registry, tmp_path, ct_file):
    folder = tmp_path / "cohort" / "s1"
    folder.mkdir(parents=True)
    shutil.copy(ct_file[0], folder / "ct.nii.gz")
    with pytest.raises(UserError) as exc:
        build_dataset(registry, build_config("quick"), f"nifti:{tmp_path / 'cohort'}")
    assert str(folder / "vertebrae.nii.gz") in _one_line(exc)


def test_mask_shape_mismatch(tmp_path, ct_file):
    path, affine = ct_file
    ct = read_volume(path)
    labels = write_nifti(tmp_path / "vertebrae.nii.gz", np.zeros((40, 36, 11), np.uint8), affine)
    with pytest.raises(UserError, match="shape") as exc:
        read_nifti_labels(labels, ct)
    assert "vertebrae.nii.gz" in _one_line(exc)


def test_mask_affine_mismatch(tmp_path, ct_file):
    path, affine = ct_file
    ct = read_volume(path)
    shifted = affine.copy()
    shifted[0, 3] += 3.0
    labels = write_nifti(tmp_path / "vertebrae.nii.gz", np.zeros((40, 36, 12), np.uint8), shifted)
    with pytest.raises(UserError, match="affine") as exc:
        read_nifti_labels(labels, ct)
    assert "vertebrae.nii.gz" in _one_line(exc)


def test_non_ct_image(tmp_path):
    mr_like = np.random.default_rng(0).uniform(0, 1200, size=(20, 20, 5)).astype(np.float32)
    path = write_nifti(tmp_path / "t1.nii.gz", mr_like, np.eye(4))
    with pytest.raises(UserError, match="not a CT") as exc:
        read_volume(path)
    assert "t1.nii.gz" in _one_line(exc)
    stored = (synthetic_ct() + 1024).astype(np.int16)  # stored values without the intercept
    path = write_nifti(tmp_path / "stored.nii.gz", stored, np.eye(4))
    with pytest.raises(UserError, match="not a CT") as exc:
        read_volume(path)
    assert "stored.nii.gz" in _one_line(exc)


def test_four_dimensional_image(tmp_path):
    path = write_nifti(tmp_path / "perfusion.nii.gz",
                       np.repeat(synthetic_ct()[..., None], 3, axis=3), np.eye(4))
    with pytest.raises(UserError, match="4 dimensions") as exc:
        read_volume(path)
    assert "perfusion.nii.gz" in _one_line(exc)
    single = write_nifti(tmp_path / "one.nii.gz", synthetic_ct()[..., None], np.eye(4))
    assert read_volume(single).hu.shape == (12, 36, 40)  # a trailing length-1 axis is fine


def test_label_map_without_either_convention(registry, tmp_path, ct_file):
    folder = tmp_path / "cohort" / "s1"
    folder.mkdir(parents=True)
    shutil.copy(ct_file[0], folder / "ct.nii.gz")
    labels = np.zeros((40, 36, 12), np.uint8)
    labels[10:20, 10:20, 3:6] = 5
    write_nifti(folder / "vertebrae.nii.gz", labels, ct_file[1])
    with pytest.raises(UserError, match="neither VerSe") as exc:
        build_dataset(registry, build_config("quick"), f"nifti:{tmp_path / 'cohort'}")
    assert str(folder / "vertebrae.nii.gz") in _one_line(exc)


def test_empty_directory(registry, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no subject folders") as exc:
        build_dataset(registry, build_config("quick"), f"nifti:{empty}")
    assert str(empty) in _one_line(exc)
    with pytest.raises(UserError, match="no DICOM") as exc:
        read_volume(empty)
    assert str(empty) in _one_line(exc)
    with pytest.raises(UserError, match="no such directory"):
        build_dataset(registry, build_config("quick"), f"nifti:{tmp_path / 'absent'}")


def test_dicom_of_another_modality(tmp_path):
    files = write_dicom_series(tmp_path / "mr", np.zeros((2, 4, 4), np.uint16), row_dir=(1, 0, 0),
                               col_dir=(0, 1, 0), origin_lps=(0, 0, 0), modality="MR")
    with pytest.raises(UserError, match="Modality is MR") as exc:
        read_volume(tmp_path / "mr")
    assert files[0].name in _one_line(exc)


def test_bad_dataset_options(registry):
    cfg = build_config("quick")
    cfg.data.options["example"] = {"erosion_mm": 0}
    with pytest.raises(UserError, match="erosion_mm"):
        build_dataset(registry, cfg, "example")
    cfg.data.options["example"] = {"erosion_depth": 2}
    with pytest.raises(UserError, match="erosion_depth"):
        build_dataset(registry, cfg, "example")


@needs_example
def test_check_tool_reports_the_example(capsys):
    from jmedbench_ctio.check import main

    assert main([str(SHARED_DATA)]) == 0
    out = capsys.readouterr().out
    assert "convention: totalsegmentator" in out and "cancellous_median_hu: 121.0" in out
    assert main([str(SHARED_DATA / "dicom")]) == 2
