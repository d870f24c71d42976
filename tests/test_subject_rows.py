"""Subjects as the unit: the per-subject rows a run stores (overlap and surface scores over a
subject's slices, BMD by three estimators, metadata), their means, and the worst value of
every metric for an empty prediction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jmedbench.config import build_config
from jmedbench.data import Evaluation
from jmedbench.engine.evaluate import (add_subject_values, aggregate, aggregate_subjects,
                                       dataset_metrics, image_metric_rows, subject_metric_rows)
from jmedbench.engine.run import execute
from jmedbench.store import Store
from test_density_metric import make_subject

SURFACE = ("nsd", "hd95", "assd")
SUBJECT_KEYS = {"dice", "iou", "nsd", "hd95", "assd", "nsd_tolerance_mm", "bmd_reference",
                "bmd_predicted", "bmd_error", "bmd_failed", "bmd_failure", "bmd_mean_error",
                "bmd_median_error"}


def score(registry, subjects, predictions, split="test"):
    """What a run stores for one split: subject rows, with the BMD values merged in."""
    image_metrics = [m for m in registry.specs("metrics") if m.scope == "image"]
    rows = subject_metric_rows(split, subjects, predictions, image_metrics, 3)
    per_subject: dict = {}
    metrics, problems = dataset_metrics(Evaluation(subjects, predictions),
                                        [registry.metric("bmd")], subject_values=per_subject)
    assert problems == []
    return add_subject_values(rows, per_subject), metrics, image_metrics


@pytest.fixture(scope="module")
def subjects():
    rng = np.random.default_rng(4)
    return [make_subject(f"p{i}", mode, rng, age=40.0 + 10 * i, slices=2)
            for i, mode in enumerate((100.0, 150.0, 200.0))]


def test_subject_rows_hold_every_score_with_the_contract_keys(registry, subjects):
    predictions = [s.label.copy() for s in subjects]
    predictions[1] = np.roll(predictions[1], 2, axis=2)  # a shifted mask: worse, still measured
    rows, metrics, image_metrics = score(registry, subjects, predictions)
    assert [r[:2] for r in rows] == [("test", s.subject_id) for s in subjects]
    for (_, _, values), subject in zip(rows, subjects):
        assert SUBJECT_KEYS <= set(values)
        assert values["sex"] == "F" and values["age"] == subject.age and values["site"] == "N"
        assert values["bmd_true"] == subject.true_bmd
        assert values["nsd_tolerance_mm"] == 1.25
        for name in ("dice", "iou") + SURFACE:
            assert len(values[name]) == 3
        for name in SURFACE:
            assert math.isnan(values[name][0])                 # background not scored
    perfect, shifted = rows[0][2], rows[1][2]
    assert perfect["dice"][1:] == [1.0, 1.0] and perfect["nsd"][1:] == [1.0, 1.0]
    assert perfect["hd95"][1:] == [0.0, 0.0] and perfect["bmd_error"] == 0.0
    assert perfect["bmd_mean_error"] == 0.0 and perfect["bmd_median_error"] == 0.0
    assert not perfect["bmd_failed"] and perfect["bmd_failure"] is None
    assert shifted["dice"][2] < 1.0 and shifted["hd95"][2] == pytest.approx(2 * 0.7)
    assert shifted["bmd_error"] == pytest.approx(shifted["bmd_predicted"]
                                                 - shifted["bmd_reference"])
    means = aggregate_subjects(rows, image_metrics, 3)
    assert means["subjects"] == 3
    assert means["dice_3d_cancellous"] == pytest.approx(np.mean([r[2]["dice"][2] for r in rows]))
    assert means["hd95_3d_cancellous"] == pytest.approx(2 * 0.7 / 3)
    assert means["nsd_3d"] == pytest.approx(np.mean([means["nsd_3d_cortical"],
                                                     means["nsd_3d_cancellous"]]))
    assert metrics["bmd_failure_rate"] == 0.0
    assert metrics["bmd_mean_mae"] > 0 and metrics["bmd_median_mae"] > 0


def test_an_empty_prediction_gets_the_worst_value_of_every_metric(registry, subjects):
    """All background: Dice, IoU, NSD 0; HD95 and ASSD the field-of-view diagonal (slices not
    contiguous: the slice's, 64 px x 0.7 mm per side); BMD failed with its reason, no error;
    per slice too, where nothing is left out of the means any more."""
    subject = subjects[0]
    empty = np.zeros_like(subject.label)
    rows, metrics, image_metrics = score(registry, [subject], [empty])
    values = rows[0][2]
    diagonal = math.hypot(64 * 0.7, 64 * 0.7)
    for name in ("dice", "iou", "nsd"):
        assert values[name][1:] == [0.0, 0.0], name
    for name in ("hd95", "assd"):
        assert values[name][1:] == pytest.approx([diagonal, diagonal]), name
    assert values["bmd_failed"] is True and "no pixel with label 2" in values["bmd_failure"]
    for key in ("bmd_predicted", "bmd_error", "bmd_mean_error", "bmd_median_error"):
        assert values[key] is None, key
    assert values["bmd_reference"] is not None
    assert metrics["bmd_failure_rate"] == 1.0 and metrics["bmd_failed"] == 1
    per_slice = aggregate(image_metric_rows("test", [subject], [empty], image_metrics, 3),
                          image_metrics, 3)
    assert per_slice["hd95_cancellous"] == pytest.approx(diagonal)
    assert per_slice["hd95_cancellous_undefined"] == 0
    assert per_slice["dice"] == 0.0 and per_slice["nsd"] == 0.0
    contiguous = type(subject)(**{**subject.__dict__, "contiguous": True})
    rows = subject_metric_rows("test", [contiguous], [empty], image_metrics, 3)
    assert rows[0][2]["hd95"][2] == pytest.approx(math.sqrt(2 * 44.8 ** 2 + (2 * 3.0) ** 2))


def test_every_metric_states_its_worst_case(registry):
    for metric in registry.specs("metrics"):
        assert metric.worst_case, metric.name
    assert "diagonal of the field of view" in registry.metric("hd95").worst_case
    assert "1.25 mm" in registry.metric("nsd").worst_case
    assert "ranks below any measured error" in registry.metric("bmd").worst_case


def test_a_quick_run_stores_subject_rows(registry, tmp_path):
    store = Store(tmp_path / "s.sqlite")
    cfg = build_config("quick", overrides={"train.steps": 20, "data.image_size": 32,
                                           "seed": 2})
    result = execute(registry, cfg, store)
    rows = store.subject_metrics(result.run_id)
    metrics = store.get_run(result.run_id)["metrics"]
    splits = {r["split"] for r in rows}
    assert splits == {"test", "shift"}
    assert sum(r["split"] == "test" for r in rows) == metrics["subjects"]
    for row in rows:
        assert SUBJECT_KEYS | {"bmd_true", "sex", "age", "site"} <= set(row)
        assert row["dice"][0] is not None and row["hd95"][0] is None   # NaN stored as null
        assert isinstance(row["bmd_failed"], bool)
    for key in ("dice_3d_cancellous", "nsd_3d_cancellous", "hd95_3d", "shift_dice_3d",
                "nsd_cancellous", "bmd_failure_rate", "bmd_mean_mae", "shift_bmd_failure_rate"):
        assert key in metrics, key
    assert "_subject_rows" not in store.get_run(result.run_id)["details"]


@pytest.mark.parametrize("slices, contiguous", [([1, 2, 3], True), ([1, 3, 4], False),
                                                ([2], False)])
def test_real_ct_subjects_are_contiguous_when_their_slices_are_a_run(slices, contiguous):
    from jmedbench_ctio.dataset import subject_from_bodies
    yy, xx = np.mgrid[0:40, 0:40]
    body = np.broadcast_to(np.hypot(yy - 20, xx - 20) < 10, (6, 40, 40)).copy()
    hu = np.where(body, 200.0, -1000.0).astype(np.float32)
    subject = subject_from_bodies("ct", hu, (2.0, 1.0, 1.0), {"L1": body}, np.array(slices),
                                  image_size=32, erosion_mm=2.0, fov_mm=40.0, center="vertebra")
    assert subject.contiguous is contiguous
    assert subject.n_slices == len(slices)


def test_per_subject_means_do_not_collide_with_per_slice_or_bmd_keys(registry, subjects):
    predictions = [s.label for s in subjects]
    rows, metrics, image_metrics = score(registry, subjects, predictions)
    per_slice = set(aggregate(image_metric_rows("test", subjects, predictions, image_metrics, 3),
                              image_metrics, 3))
    per_subject = set(aggregate_subjects(rows, image_metrics, 3))
    assert not per_slice & per_subject and not (per_slice | per_subject) & set(metrics)
    assert {"dice_3d", "nsd_3d_cancellous", "hd95_3d_cortical_undefined"} <= per_subject
