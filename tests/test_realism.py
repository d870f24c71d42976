"""The realism report (jmedbench.realism, `jmedbench dataset compare`): statistics with known
answers on a synthetic slice stack, and the command on the phantom and the real example."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jmedbench.cancellous import split_body
from jmedbench.data import Dataset, Subject
from jmedbench.realism import realism_stats

from conftest import SHARED_DATA


def _known_subject(noise_sd=20.0, pixel=1.0, seed=0):
    """A 40 x 30 mm elliptic body (cancellous 150 HU + white noise, rim 400 HU) in muscle
    (50 HU) inside fat (-100 HU), white noise of ``noise_sd`` everywhere."""
    rng = np.random.default_rng(seed)
    n = 128
    yy, xx = (np.mgrid[:n, :n] - (n - 1) / 2) * pixel
    body = (xx / 20.0) ** 2 + (yy / 15.0) ** 2 <= 1.0
    muscle = (xx / 45.0) ** 2 + (yy / 40.0) ** 2 <= 1.0
    label = np.stack([split_body(body, (pixel, pixel), 2.0)] * 4)
    image = np.full((4, n, n), -100.0, np.float32)
    image[:, muscle] = 50.0
    image[label == 1] = 400.0
    image[label == 2] = 150.0
    image += rng.normal(0.0, noise_sd, image.shape).astype(np.float32)
    return Subject("known", image, label, (3.0, pixel, pixel))


def test_statistics_with_known_answers():
    stats = realism_stats(Dataset({"test": [_known_subject()]}, name="known"))
    assert stats.cancellous_median_hu == pytest.approx(150.0, abs=2.0)
    assert stats.cancellous_robust_sd_hu == pytest.approx(20.0, abs=1.5)
    assert stats.johnson_su["mode"] == pytest.approx(150.0, abs=3.0)
    # the local SD of white noise is the noise SD (5 x 5 windows, median over the region)
    assert stats.noise_sd_fat_hu == pytest.approx(20.0, rel=0.08)
    assert stats.noise_sd_muscle_hu == pytest.approx(20.0, rel=0.08)
    # white noise has no correlation beyond one pixel
    assert stats.texture_acl_mm < 1.0
    assert stats.body_width_mm == pytest.approx(40.0, abs=1.5)
    assert stats.body_depth_mm == pytest.approx(30.0, abs=1.5)
    profile = stats.outline_profile_hu
    assert profile["-1"] == pytest.approx(400.0, abs=15) and profile["-3"] == pytest.approx(
        150.0, abs=15)
    assert profile["+3"] == pytest.approx(50.0, abs=10)  # muscle around the body


def test_cancellous_distribution_is_a_persons_not_a_cohorts():
    # two people, cancellous 100 and 200 HU with noise 20: pooled, the robust SD would be
    # about 60 HU and the median 150; per subject each is 20 HU wide around its own value
    low, high = _known_subject(seed=1), _known_subject(seed=2)
    high.image[high.label == 2] += 100.0
    low.image[low.label == 2] -= 50.0
    stats = realism_stats(Dataset({"test": [low, high]}, name="two"))
    assert stats.cancellous_robust_sd_hu == pytest.approx(20.0, abs=1.5)
    assert stats.cancellous_median_hu == pytest.approx(175.0, abs=3.0)  # median of 100, 250
    assert stats.johnson_su["mode"] == pytest.approx(175.0, abs=4.0)


def test_correlated_texture_has_a_longer_autocorrelation():
    from scipy.ndimage import gaussian_filter

    subject = _known_subject(noise_sd=0.0)
    rng = np.random.default_rng(1)
    field = gaussian_filter(rng.normal(size=subject.image.shape), (0, 2.0, 2.0))
    subject.image += (40.0 * field / field.std()).astype(np.float32)
    stats = realism_stats(Dataset({"test": [subject]}))
    # a Gaussian-filtered field (sigma 2 px) has autocorrelation exp(-r^2 / (4 sigma^2)):
    # it falls to 1/e at r = 2 sigma = 4 pixels
    assert stats.texture_acl_mm == pytest.approx(4.0, abs=0.6)


@pytest.mark.skipif(not (SHARED_DATA / "ct.nii.gz").is_file(), reason="example CT not found")
def test_dataset_compare_phantom_and_example(tmp_path, capsys):
    from jmedbench.cli import main

    png = tmp_path / "compare.png"
    assert main(["dataset", "compare", "phantom", "example", "--profile", "quick", "--json",
                 "--out", str(png)]) == 0
    report = json.loads(capsys.readouterr().out)
    names = [d["name"] for d in report["datasets"]]
    assert names == ["phantom", "example"]
    example = report["datasets"][1]
    assert 100 < example["cancellous_median_hu"] < 250  # a 55-year-old man's lumbar bone
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv,message", [
    (["dataset", "compare", "phantom"], "at least two datasets"),
    (["dataset", "compare", "phantom", "nosuchset"], "nosuchset"),
    (["dataset", "compare", "phantom", "phantom", "--out", "x.jpg"], "PNG"),
])
def test_dataset_compare_bad_input_exits_2_with_one_line(argv, message, capsys):
    from jmedbench.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
