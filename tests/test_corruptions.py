"""The robustness suite's corruptions: the identity at severity 0, growth with severity,
determinism, dtype and shape, label maps that move with the image, HU recalibration, the
projector against scikit-image, and the gallery."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage as ndi

from jmedbench.registry import get_registry

REGISTRY = get_registry()
CORRUPTIONS = REGISTRY.specs("corruptions")
NAMES = [s.name for s in CORRUPTIONS]
SEEDS = (0, 1, 2)


def _full_field_test_subject():
    """The quick profile's first phantom test subject (128 x 128) imaged over the full view.
    Some phantom subjects are targeted reconstructions padded with -1024 HU around a smaller
    field (docs/phantom.md); the corruptions are measured on a whole CT slice."""
    from jmedbench.config import build_config
    from jmedbench.engine.build import build_dataset

    cfg = build_config("quick", overrides={"data.image_size": 128, "dataset": "phantom"})
    return next(s for s in build_dataset(REGISTRY, cfg).split("test")
                if not s.meta.get("targeted_field"))


@pytest.fixture(scope="module")
def phantom_slice():
    """The slice with the most cancellous bone of a full-field phantom test subject, 128 x 128
    (the default size), chosen as ``jmedbench corruptions show`` chooses its slice."""
    subject = _full_field_test_subject()
    index = int(np.argmax((subject.label == 2).sum(axis=(1, 2))))
    return subject.image[index].astype(np.float32), subject.label[index].astype(np.uint8)


@pytest.fixture(scope="module")
def typical_phantom_slice():
    """A typical slice of a full-field phantom test subject: among those with at least half the
    largest cancellous area, the one whose cancellous median HU is nearest the subject's. (The
    widest slice may cut a dense endplate, hundreds of HU above the BMD, where a recalibration
    through fat and soft tissue extrapolates furthest.)"""
    subject = _full_field_test_subject()
    cancellous = subject.label == 2
    areas = cancellous.sum(axis=(1, 2))
    typical = float(np.median(subject.image[cancellous]))
    wide = [i for i in range(len(areas)) if areas[i] >= 0.5 * areas.max()]
    index = min(wide, key=lambda i: abs(float(np.median(subject.image[i][cancellous[i]]))
                                        - typical))
    return subject.image[index].astype(np.float32), subject.label[index].astype(np.uint8)


def synthetic_slice(size: int = 128, noise: float = 0.0):
    """Air, a fat ring, soft tissue (muscle) and a vertebral body with known HU."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    body = ((xx - 0.5) / 0.45) ** 2 + ((yy - 0.5) / 0.38) ** 2 < 1
    inner = ((xx - 0.5) / 0.36) ** 2 + ((yy - 0.5) / 0.29) ** 2 < 1
    r = ((xx - 0.5) / 0.15) ** 2 + ((yy - 0.55) / 0.115) ** 2
    image = np.full((size, size), -1000.0)
    image[body] = -100.0
    image[inner] = 40.0
    label = np.zeros((size, size), np.uint8)
    label[r < 1] = 1
    label[r < 0.75] = 2
    image[label == 1] = 1200.0
    image[label == 2] = 150.0
    rng = np.random.default_rng(7)
    return (image + rng.normal(0, noise, image.shape)).astype(np.float32), label


# -- the registry ------------------------------------------------------------------------------
def test_suite_has_three_families_and_at_least_25_corruptions():
    families = {s.family for s in CORRUPTIONS}
    assert {"classic", "ct", "phone"} <= families
    assert len(CORRUPTIONS) >= 25
    assert "phone_photo" in NAMES
    for spec in CORRUPTIONS:
        assert spec.severities == 5
        assert spec.density in ("hu", "recalibrate", "not_applicable")
        assert spec.citation and spec.description
    # HU is destroyed (and rebuilt) exactly by the exports and photos
    rebuilt = {s.name for s in CORRUPTIONS if s.density != "hu"}
    assert rebuilt == {"ct_8bit_export"} | {n for n in NAMES if n.startswith("phone_")}
    assert REGISTRY.corruption("phone_glare").density == "not_applicable"
    geometric = {s.name for s in CORRUPTIONS if s.geometric}
    assert geometric == {"elastic", "phone_perspective", "phone_photo"}


def test_list_corruptions_json(cli_in_process):
    out = cli_in_process("list", "corruptions", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert set(NAMES) <= set(rows)
    row = rows["ct_low_dose"]
    assert row["family"] == "ct" and row["severities"] == 5 and row["density"] == "hu"
    assert "Yu" in row["citation"]


# -- every corruption --------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_severity_zero_is_identity(name, phantom_slice):
    image, label = phantom_slice
    out, out_label = REGISTRY.corruption(name).apply(image, label, 0, np.random.default_rng(0))
    assert out is not image and np.array_equal(out, image)
    assert np.array_equal(out_label, label)


@pytest.mark.parametrize("name", NAMES)
def test_grows_with_severity_keeps_dtype_shape_and_is_deterministic(name, phantom_slice):
    """Mean absolute HU difference from the clean slice, averaged over three seeds (the same
    seed at every severity), rises strictly from severity 1 to 5."""
    image, label = phantom_slice
    spec = REGISTRY.corruption(name)
    distance = np.zeros((len(SEEDS), 5))
    for i, seed in enumerate(SEEDS):
        for severity in range(1, 6):
            out, out_label = spec.apply(image, label, severity, np.random.default_rng(seed))
            assert out.dtype == np.float32 and out.shape == image.shape
            assert out_label.dtype == np.uint8 and out_label.shape == label.shape
            assert np.isfinite(out).all()
            assert -1024 <= out.min() and out.max() <= 3071
            if not spec.geometric:
                assert np.array_equal(out_label, label)
            distance[i, severity - 1] = np.abs(out.astype(np.float64) - image).mean()
    mean = distance.mean(axis=0)
    assert mean[0] > 0
    assert np.all(np.diff(mean) > 0), f"{name}: distance by severity {np.round(mean, 1)}"
    again, again_label = spec.apply(image, label, 3, np.random.default_rng(SEEDS[0]))
    first, first_label = spec.apply(image, label, 3, np.random.default_rng(SEEDS[0]))
    assert np.array_equal(again, first) and np.array_equal(again_label, first_label)


@pytest.mark.parametrize("name", ["elastic", "phone_perspective", "phone_photo"])
def test_geometric_corruptions_move_the_label_map_with_the_image(name, phantom_slice):
    """An image whose bright pixels are exactly the labelled bone (a vertebra-like ring placed
    off-centre, where a tilt moves it most): after the corruption, the bright pixels must be
    the moved labelled ones, and clearly no longer the old ones."""
    image, _ = phantom_slice
    yy, xx = np.mgrid[0:128, 0:128] / 128
    r = ((xx - 0.27) / 0.12) ** 2 + ((yy - 0.3) / 0.1) ** 2
    label = np.zeros((128, 128), np.uint8)
    label[r < 1] = 1
    label[r < 0.7] = 2
    coded = np.minimum(image, 100.0)   # every other tissue below 100 HU
    coded[label > 0] = 1400.0

    def dice(a, b):
        return 2 * (a & b).sum() / (a.sum() + b.sum())

    for seed in (3, 4):
        out, moved = REGISTRY.corruption(name).apply(coded, label, 5, np.random.default_rng(seed))
        assert set(np.unique(moved)) <= {0, 1, 2} and (moved == 2).any()
        # bright = above half-way between the bone and its surroundings (blur-proof)
        ring = ndi.binary_dilation(moved > 0, iterations=4) & ~ndi.binary_dilation(moved > 0,
                                                                                   iterations=2)
        half = (np.median(out[ndi.binary_erosion(moved > 0)]) + np.median(out[ring])) / 2
        bright = out > half
        assert dice(bright, moved > 0) > 0.9
        assert dice(bright, moved > 0) > dice(bright, label > 0) + 0.05


def test_wrong_severity_or_shape_is_rejected():
    image, label = synthetic_slice(32)
    spec = REGISTRY.corruption("gaussian_noise")
    with pytest.raises(ValueError, match="severity"):
        spec.apply(image, label, 6, np.random.default_rng(0))
    with pytest.raises(ValueError, match="equal"):
        spec.apply(image, label[:16], 1, np.random.default_rng(0))


# -- HU recalibration --------------------------------------------------------------------------
def test_recalibrating_an_8bit_export_recovers_hu_exactly_known_tissues():
    from jmedbench_corruptions._common import to_uint8, window
    from jmedbench_corruptions.recalibration import recalibrate

    image, label = synthetic_slice(128, noise=10.0)
    for level, width in ((500.0, 3000.0), (500.0, 2000.0), (40.0, 400.0)):
        grey = to_uint8(window(image, level, width)) / 255.0
        hu, info = recalibrate(grey, "linear")
        assert not info.fallback and info.points >= 2
        assert abs(info.slope - width) / width < 0.03
        for value in (-100.0, 40.0, 150.0):
            region = np.abs(image - value) < 30
            assert abs(np.median(hu[region]) - value) < 8, (level, width, value)
        # air: kept where visible (W3000), else imputed as air from the clipped background
        assert abs(np.median(hu[image < -500]) + 1000) < 15


def test_recalibrating_a_photo_of_the_screen_recovers_hu():
    from jmedbench_corruptions.phone import NOMINAL, photograph
    from jmedbench_corruptions.recalibration import recalibrate

    image, label = synthetic_slice(128, noise=10.0)
    grey, _ = photograph(image, label, NOMINAL, np.random.default_rng(0))
    assert grey.min() > 0.1  # the screen's black is not black in a photo
    hu, info = recalibrate(grey, "display")
    assert info.points == 2 and not info.fallback
    for value, tolerance in ((-100.0, 10), (40.0, 10), (150.0, 15)):
        region = np.abs(image - value) < 30
        assert abs(np.median(hu[region]) - value) < tolerance, value
    # without undoing the display chain (a straight line through fat and soft tissue) the
    # black level bends grey levels and bone comes out wrong: the model matters
    straight, _ = recalibrate(grey, "linear")
    bone = label == 1
    assert abs(np.median(hu[bone]) - 1200) < abs(np.median(straight[bone]) - 1200)


@pytest.mark.parametrize("name", ["ct_8bit_export", "phone_window_gamma", "phone_moire",
                                  "phone_colour_cast", "phone_vignetting", "phone_jpeg"])
def test_recalibrated_corruptions_keep_density_at_low_severity(name, typical_phantom_slice):
    """At severity 1 the rebuilt HU of cancellous bone (the BMD) stays within 30 HU, fat and
    soft tissue within 25 HU, of the clean slice (the references are -100 and 40 HU). On the
    CT-like phantom (correlated noise of 8-35 HU, fat and muscle medians within 5 HU of the
    references) the fat and soft-tissue medians move by up to 24.8 HU (phone_colour_cast;
    20.5 ct_8bit_export, 21.5 phone_moire): the old phantom's flat tissues allowed 20."""
    image, label = typical_phantom_slice
    spec = REGISTRY.corruption(name)
    assert spec.density == "recalibrate"
    core = ndi.binary_erosion(label == 2, iterations=2)
    fat = (image > -160) & (image < -60)
    soft = (image > 0) & (image < 60) & (label == 0)
    for seed in SEEDS:
        out, _ = spec.apply(image, label, 1, np.random.default_rng(seed))
        assert abs(out[core].mean() - image[core].mean()) < 30
        assert abs(np.median(out[fat]) - np.median(image[fat])) < 25
        assert abs(np.median(out[soft]) - np.median(image[soft])) < 25


def test_recalibration_says_what_it_could_use():
    from jmedbench_corruptions.recalibration import recalibrate

    hu, info = recalibrate(np.zeros((64, 64)), "display")  # a black photo: nothing to go by
    assert info.fallback and info.points == 0 and hu.dtype == np.float32
    hu, info = recalibrate(np.full((64, 64), 0.5), "display")  # one tissue: soft tissue only
    assert not info.fallback and info.points == 1
    assert np.allclose(hu, 40.0, atol=0.5)  # it is given soft tissue's HU


# -- the projector -----------------------------------------------------------------------------
def test_projector_matches_scikit_image():
    from skimage.transform import iradon, radon

    from jmedbench_corruptions.projection import projector

    image, _ = synthetic_slice(96)
    mu = ndi.gaussian_filter(np.maximum(image + 1000.0, 0) / 1000.0, 1.0)
    proj = projector(96, 96)
    theta = np.arange(proj.n_angles) * 180.0 / proj.n_angles
    ours = proj.forward(mu) / proj.pixel_mm
    theirs = radon(mu, theta, circle=False).T
    offset = proj.n_det // 2 - theirs.shape[1] // 2
    ours = ours[:, offset:offset + theirs.shape[1]]
    assert np.abs(ours - theirs).mean() / np.abs(theirs).mean() < 0.01
    assert np.abs(ours - theirs).max() / np.abs(theirs).max() < 0.05
    # filtered back-projection gives the image back at the right scale; the pixel footprint
    # smooths a little more than scikit-image's linear interpolation
    recon = proj.fbp(proj.forward(mu), window="ramp")
    reference = iradon(theirs.T, theta, circle=False, output_size=96)
    assert abs(recon.mean() / mu.mean() - 1) < 0.01
    ours_error, their_error = np.abs(recon - mu).mean(), np.abs(reference - mu).mean()
    assert ours_error < 2.5 * their_error and ours_error < 0.04 * mu.mean()


def test_translated_sinogram_is_the_sinogram_of_the_moved_object():
    from jmedbench_corruptions.projection import projector

    image, _ = synthetic_slice(96)
    mu = np.maximum(image + 1000.0, 0) / 1000.0
    proj = projector(96, 96)
    for rows, cols in ((3.0, 0.0), (0.0, -2.0), (2.5, 1.5)):
        moved = proj.forward(ndi.shift(mu, (rows, cols), order=1))
        shifted = proj.translate(proj.forward(mu), np.full(proj.n_angles, rows),
                                 np.full(proj.n_angles, cols))
        assert np.abs(shifted - moved).mean() < 0.005 * np.abs(moved).mean()
        wrong = proj.translate(proj.forward(mu), np.full(proj.n_angles, -rows),
                               np.full(proj.n_angles, -cols))
        assert np.abs(wrong - moved).mean() > 5 * np.abs(shifted - moved).mean()


def test_low_dose_noise_grows_as_dose_falls_and_keeps_the_mean():
    image, label = synthetic_slice(96)
    spec = REGISTRY.corruption("ct_low_dose")
    soft = np.abs(image - 40) < 1
    soft = ndi.binary_erosion(soft, iterations=3)
    sds = []
    for severity in (1, 3, 5):
        out, _ = spec.apply(image, label, severity, np.random.default_rng(0))
        sds.append(out[soft].std())
        assert abs(out[soft].mean() - 40) < 0.25 * out[soft].std() + 3
    assert sds[0] > 3 and sds[0] < sds[1] < sds[2]


# -- the gallery -------------------------------------------------------------------------------
def test_gallery_renders(tmp_path, phantom_slice):
    from PIL import Image

    from jmedbench.reports.corruptions import render_gallery

    image, label = phantom_slice
    specs = [REGISTRY.corruption("phone_photo"), REGISTRY.corruption("ct_metal")]
    out = tmp_path / "gallery.png"
    result = render_gallery(image, label, specs, [1, 5], out)
    assert result["corruptions"] == ["phone_photo", "ct_metal"]
    with Image.open(out) as png:
        width, height = png.size
    assert width > 300 and height > 300


def test_gallery_command_and_its_mistakes(cli_in_process, tmp_path):
    out = tmp_path / "g.png"
    ok = cli_in_process("corruptions", "show", "ct_hu_offset", "--severity", "2", "--size", "64",
                        "--out", str(out), "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["severities"] == [2] and out.stat().st_size > 0
    bad = cli_in_process("corruptions", "show", "phne", "--out", str(out))
    assert bad.returncode == 2 and "did you mean phone" in bad.stderr
    bad = cli_in_process("corruptions", "show", "--severity", "7", "--out", str(out))
    assert bad.returncode == 2 and "severity" in bad.stderr and "Traceback" not in bad.stderr
