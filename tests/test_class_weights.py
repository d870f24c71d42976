"""The cross-entropy's class weights ([train] class_weighting), on label maps with known pixel
counts."""

import numpy as np
import pytest

from jmedbench.config import build_config
from jmedbench.engine.train import class_weights


def labels_with_counts(*counts: int) -> np.ndarray:
    return np.concatenate([np.full(n, c, np.int64) for c, n in enumerate(counts)])


def test_median_frequency_weights_are_the_median_over_each_frequency_mean_one():
    # frequencies 0.8, 0.05, 0.15 -> median 0.15 -> 0.1875, 3, 1 -> divided by their mean
    raw = np.array([0.15 / 0.8, 0.15 / 0.05, 1.0])
    got = class_weights(labels_with_counts(800, 50, 150), 3)
    np.testing.assert_allclose(got, raw / raw.mean(), rtol=1e-6)


def test_no_weighting_gives_every_present_class_one():
    np.testing.assert_array_equal(
        class_weights(labels_with_counts(800, 50, 150), 3, "none"), [1.0, 1.0, 1.0])


@pytest.mark.parametrize("weighting", ["median-frequency", "none"])
def test_an_absent_class_gets_weight_zero_and_the_rest_mean_one(weighting):
    got = class_weights(labels_with_counts(900, 0, 100), 3, weighting)
    assert got[1] == 0.0
    assert got[[0, 2]].mean() == pytest.approx(1.0)


def test_the_default_profile_keeps_median_frequency_weighting():
    assert build_config("default").train.class_weighting == "median-frequency"
