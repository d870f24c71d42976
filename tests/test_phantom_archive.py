"""The phantom's archived scans (``jmedbench_phantom.scanner.Archive``): a scan stored on a
coarser grid and resampled back to the models' grid, its image and its body masks, against
known answers."""

from __future__ import annotations

import numpy as np
import pytest

from jmedbench.cancellous import bodies_from_fractions
from jmedbench_phantom.cohort import SITES
from jmedbench_phantom.scanner import ARCHIVE_MM, ARCHIVED_PROBABILITY, Archive, draw_protocol

SIZE, PIXEL = 128, 1.25


def disc_fraction(radius_mm: float, centre=(0.3, -0.2)) -> np.ndarray:
    """A disc's area fraction per pixel (16 x 16 sub-samples), centred near the middle."""
    sub = (np.arange(SIZE * 16) + 0.5) / 16 - SIZE / 2
    y, x = np.meshgrid(sub - centre[0], sub - centre[1], indexing="ij")
    inside = (x * x + y * y) * PIXEL * PIXEL <= radius_mm * radius_mm
    return inside.reshape(SIZE, 16, SIZE, 16).mean(axis=(1, 3)).astype(np.float32)


@pytest.mark.parametrize("archive_mm", [1.5, 2.2, 3.0])
def test_a_uniform_plane_stays_uniform(archive_mm):
    archive = Archive(SIZE, PIXEL, archive_mm, phase=0.3)
    stored = archive.store(np.full((SIZE, SIZE), 57.0, np.float32))
    n = int(SIZE * PIXEL / archive_mm)
    assert stored.shape == (n, n)
    np.testing.assert_allclose(archive.load(stored), 57.0, atol=1e-3)


@pytest.mark.parametrize("archive_mm", [1.5, 2.2, 3.0])
@pytest.mark.parametrize("phase", [-0.5, 0.0, 0.37])
def test_a_body_mask_keeps_its_area_and_place(archive_mm, phase):
    """A 20 mm disc annotated on the archive and resampled back: within 4 % of its area and a
    tenth of an archive pixel of its centre (an archive pixel is 1.2-2.4 output pixels)."""
    archive = Archive(SIZE, PIXEL, archive_mm, phase)
    truth = disc_fraction(20.0)
    mask = bodies_from_fractions([archive.load(
        bodies_from_fractions([archive.store(truth)])[0].astype(np.float32))])[0]
    assert mask.sum() == pytest.approx(truth.sum(), rel=0.04)
    rows, cols = np.nonzero(mask)
    weights = np.nonzero(truth > 0.5)
    tolerance = 0.1 * archive_mm / PIXEL + 0.5
    assert abs(rows.mean() - weights[0].mean()) < tolerance
    assert abs(cols.mean() - weights[1].mean()) < tolerance


@pytest.mark.parametrize("archive_mm", [1.5, 3.0])
def test_an_edge_is_spread_over_about_one_archive_pixel(archive_mm):
    """A step from 0 to 1000 HU: its 10-90 % rise is one output pixel before archiving and one
    to two archive pixels after it (the archive pixel's averaging, then linear interpolation
    between samples an archive pixel apart)."""
    step = np.zeros((SIZE, SIZE), np.float32)
    step[:, SIZE // 2:] = 1000.0
    profile = Archive(SIZE, PIXEL, archive_mm, 0.1).load(
        Archive(SIZE, PIXEL, archive_mm, 0.1).store(step))[SIZE // 2]
    columns = np.arange(SIZE, dtype=float)
    rise = (np.interp(900.0, profile, columns) - np.interp(100.0, profile, columns)) * PIXEL
    assert 0.8 * archive_mm < rise < 1.8 * archive_mm, rise
    assert profile[0] == pytest.approx(0.0, abs=1e-3)
    assert profile[-1] == pytest.approx(1000.0, abs=1e-2)


def test_noise_is_averaged_down_by_the_archive():
    """White noise of SD 20 HU: averaged over 3 mm archive pixels, then interpolated, its SD
    falls by about the ratio of the pixels (1.25 / 3, less for the interpolation's mixing)."""
    noise = np.random.default_rng(0).normal(0.0, 20.0, (SIZE, SIZE)).astype(np.float32)
    archive = Archive(SIZE, PIXEL, 3.0, 0.0)
    sd = float(archive.load(archive.store(noise)).std())
    assert 3.0 < sd < 12.0, sd


def test_a_share_of_protocols_is_archived_on_a_coarser_grid():
    archives = [draw_protocol(np.random.default_rng([5, i]), SITES["N"]).archive_mm
                for i in range(2000)]
    archived = [a for a in archives if a is not None]
    assert len(archived) / len(archives) == pytest.approx(ARCHIVED_PROBABILITY, abs=0.04)
    assert ARCHIVE_MM[0] <= min(archived) and max(archived) <= ARCHIVE_MM[1]
