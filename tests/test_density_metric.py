"""The dataset-scope ``bmd`` metric: zero error for a perfect prediction, a bias of the right
sign for eroded and dilated masks, failures counted, categories and the age-slope error."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, stats

from jmedbench.data import Evaluation, Subject
from jmedbench.density.johnsonsu import johnson_su_mode
from jmedbench.engine.evaluate import aggregate, dataset_metrics
from jmedbench_metrics.density import (BONE_STATUS_THRESHOLDS_HU, bmd_agreement, bone_status,
                                       cohen_kappa)

CORTEX_HU = 900.0


def make_subject(subject_id, mode_hu, rng, *, age=None, sex="F", blur=0.0, size=64, slices=3):
    """Axial slices of a body with one vertebral body: a cortical ring (label 1) around
    cancellous bone (label 2) whose HU are a Johnson-Su sample with mode ``mode_hu``. ``blur``
    (pixels) adds the scanner's partial volume: cancellous pixels next to the cortex get
    brighter, as in real CT."""
    a, b, scale = -1.2, 2.3, 70.0
    loc = mode_hu - scale * johnson_su_mode(a, b, 0.0, 1.0)
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    image = np.full((slices, size, size), -1000.0, np.float32)
    label = np.zeros((slices, size, size), np.uint8)
    for s in range(slices):
        img = np.where(r < size * 0.46, 40.0, -1000.0)
        cancellous = r < size * 0.30
        cortical = (r >= size * 0.30) & (r < size * 0.36)
        img[cortical] = CORTEX_HU
        n = int(cancellous.sum())
        img[cancellous] = loc + scale * np.sinh((rng.standard_normal(n) - a) / b)
        if blur:
            img = ndimage.gaussian_filter(img, blur)
        image[s] = np.rint(img)
        label[s][cortical] = 1
        label[s][cancellous] = 2
    return Subject(subject_id, image, label, (3.0, 0.7, 0.7), site="N", sex=sex, age=age,
                   true_bmd=None if blur else mode_hu)


def eroded(label):
    out = label.copy()
    for s in range(label.shape[0]):
        core = ndimage.binary_erosion(label[s] == 2, iterations=1)
        out[s][(label[s] == 2) & ~core] = 1
    return out


def dilated(label):
    out = label.copy()
    for s in range(label.shape[0]):
        grown = ndimage.binary_dilation(label[s] == 2, iterations=1)
        out[s][grown] = 2
    return out


@pytest.fixture(scope="module")
def subjects():
    rng = np.random.default_rng(0)
    return [make_subject(f"s{i}", mode, rng, blur=0.8)
            for i, mode in enumerate((90.0, 125.0, 150.0, 185.0, 220.0))]


def test_perfect_prediction_has_zero_error(subjects):
    out = bmd_agreement(Evaluation(subjects, [s.label for s in subjects]))
    assert out["bmd_subjects"] == 5 and out["bmd_failed"] == 0
    for key in ("bmd_mae", "bmd_bias", "bmd_loa_low", "bmd_loa_high"):
        assert out[key] == 0.0
    assert out["bmd_r"] == pytest.approx(1.0)
    assert out["bmd_category_agreement"] == 1.0
    assert out["bmd_category_kappa"] == pytest.approx(1.0)


def _scipy_mode(values):
    return johnson_su_mode(*stats.johnsonsu.fit(values))


def _independent_bias(subjects, change):
    """Mean over subjects of scipy's fitted mode on the changed mask minus on the true one."""
    return float(np.mean([_scipy_mode(s.image[change(s.label) == 2])
                          - _scipy_mode(s.image[s.label == 2]) for s in subjects]))


def test_dilated_and_eroded_masks_bias_bmd_as_an_independent_fit_does(subjects):
    """The right sign, and why. A dilated mask takes in bright cortical pixels: their mean rises
    by tens of HU, but the Johnson-Su fit answers the extra right tail with more skew and its
    mode moves *down*; an eroded mask loses the bright partial-volume rim and the mode moves
    *up*. scipy's fit on the same pixels is the reference for both signs and sizes."""
    few = subjects[:3]
    for change, sign in ((dilated, -1.0), (eroded, 1.0)):
        out = bmd_agreement(Evaluation(few, [change(s.label) for s in few]))
        reference = _independent_bias(few, change)
        assert np.sign(out["bmd_bias"]) == sign == np.sign(reference)
        assert abs(out["bmd_bias"]) > 0.3
        assert out["bmd_bias"] == pytest.approx(reference, abs=0.05)
        assert out["bmd_mae"] >= abs(out["bmd_bias"])
        assert out["bmd_loa_low"] <= out["bmd_bias"] <= out["bmd_loa_high"]
        mean_shift = np.mean([s.image[change(s.label) == 2].mean()
                              - s.image[s.label == 2].mean() for s in few])
        assert np.sign(mean_shift) == -sign  # the mean moves the other way


def test_empty_prediction_is_counted_as_failed(subjects):
    predictions = [s.label for s in subjects]
    predictions[2] = np.where(predictions[2] == 2, 0, predictions[2]).astype(np.uint8)
    out = bmd_agreement(Evaluation(subjects, predictions))
    assert out["bmd_failed"] == 1 and out["bmd_subjects"] == 4
    assert out["bmd_mae"] == 0.0


def test_unmeasurable_subjects_are_failures_with_their_reasons_in_the_details(registry,
                                                                             subjects):
    """An empty cancellous prediction and one of three pixels (too few to fit): both count in
    bmd_failed, the run goes on, and the details name each subject with its reason."""
    predictions = [s.label.copy() for s in subjects]
    predictions[0][predictions[0] == 2] = 0
    keep = np.zeros(predictions[1].size, bool)
    keep[np.flatnonzero(predictions[1].ravel() == 2)[:3]] = True
    predictions[1][(predictions[1] == 2) & ~keep.reshape(predictions[1].shape)] = 0
    details: dict = {}
    metrics, problems = dataset_metrics(Evaluation(subjects, predictions),
                                        [registry.metric("bmd")], prefix="shift_",
                                        details=details)
    assert problems == [] and metrics["shift_bmd_failed"] == 2
    assert all(isinstance(v, float) for v in metrics.values())
    failures = {f["subject"]: f["reason"] for f in details["shift_bmd_failures"]}
    assert "no pixel with label 2" in failures[subjects[0].subject_id]
    assert "only 3 pixels" in failures[subjects[1].subject_id]


def test_true_bmd_is_recovered_from_the_ground_truth_mask():
    rng = np.random.default_rng(1)
    sharp = [make_subject(f"t{i}", mode, rng, size=96) for i, mode in
             enumerate((80.0, 130.0, 170.0))]
    out = bmd_agreement(Evaluation(sharp, [s.label for s in sharp]))
    assert out["bmd_reference_true_mae"] < 2.0
    assert out["bmd_true_mae"] == out["bmd_reference_true_mae"]


def test_age_slope_error_only_with_enough_aged_subjects():
    rng = np.random.default_rng(2)
    aged = [make_subject(f"a{i}", 250.0 - 2.5 * age, rng, age=age)
            for i, age in enumerate((40, 50, 60, 70))]
    truth = [s.label for s in aged]
    out = bmd_agreement(Evaluation(aged, truth))
    assert out["bmd_k_groups"] == 1 and out["bmd_k_error"] == 0.0
    out = bmd_agreement(Evaluation(aged, [dilated(lab) for lab in truth]))
    assert out["bmd_k_error"] > 0.0
    out = bmd_agreement(Evaluation(aged[:2], truth[:2]))
    assert out["bmd_k_groups"] == 0 and "bmd_k_error" not in out


def test_bone_status_thresholds_of_pickhardt_2013():
    assert BONE_STATUS_THRESHOLDS_HU == (110.0, 160.0)
    assert [bone_status(v) for v in (60.0, 110.0, 110.5, 160.0, 160.5, 250.0)] == \
        [0, 0, 1, 1, 2, 2]


def test_cohen_kappa_known_value():
    # 10 ratings: agreement 0.7, chance (0.5*0.6 + 0.5*0.4) = 0.5 -> kappa 0.4
    a = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    b = [0, 0, 0, 0, 1, 1, 1, 1, 0, 0]
    assert cohen_kappa(a, b, categories=2) == pytest.approx(0.4)
    assert np.isnan(cohen_kappa([1, 1], [1, 1]))


def test_registered_metric_keys_do_not_collide_with_image_metrics(registry, subjects):
    spec = registry.metric("bmd")
    assert spec.scope == "dataset" and "Pickhardt" in spec.citation
    image_metrics = [m for m in registry.specs("metrics") if m.scope == "image"]
    rows = [("test", s.subject_id, 0, {m.name: [1.0, 1.0, 1.0] for m in image_metrics})
            for s in subjects]
    image_keys = set(aggregate(rows, image_metrics, 3)) | set(
        aggregate(rows, image_metrics, 3, prefix="shift_"))
    evaluation = Evaluation(subjects, [s.label for s in subjects])
    test_keys, problems = dataset_metrics(evaluation, [spec])
    shift_keys, _ = dataset_metrics(evaluation, [spec], prefix="shift_")
    assert problems == []
    assert not (set(test_keys) | set(shift_keys)) & image_keys
    assert "shift_bmd_mae" in shift_keys and "bmd_mae" in test_keys
