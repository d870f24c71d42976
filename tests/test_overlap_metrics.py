"""Dice, IoU, recall, accuracy against hand-computed masks, with the stated empty-mask rules."""

from __future__ import annotations

import numpy as np
import pytest

from jmedbench_metrics.overlap import accuracy, dice, iou, recall


def masks():
    truth = np.zeros((4, 4), np.uint8)
    truth[0:2, 0:2] = 1          # 4 pixels of class 1
    truth[2:4, 2:4] = 2          # 4 pixels of class 2
    pred = np.zeros((4, 4), np.uint8)
    pred[0:2, 0:3] = 1           # 6 pixels of class 1, 4 of them right
    pred[3, 2:4] = 2             # 2 pixels of class 2, both right
    return pred, truth


def test_dice_and_iou_by_hand():
    pred, truth = masks()
    d = dice(pred, truth, 3)
    assert d[1] == pytest.approx(2 * 4 / (6 + 4))
    assert d[2] == pytest.approx(2 * 2 / (2 + 4))
    j = iou(pred, truth, 3)
    assert j[1] == pytest.approx(4 / 6)
    assert j[2] == pytest.approx(2 / 4)
    # background: truth 8 pixels, prediction 8 pixels, overlap 6
    assert d[0] == pytest.approx(2 * 6 / 16)


def test_recall_and_accuracy_by_hand():
    pred, truth = masks()
    assert recall(pred, truth, 3)[1] == pytest.approx(1.0)
    assert recall(pred, truth, 3)[2] == pytest.approx(0.5)
    # class 1: TP 4, FP 2, FN 0, TN 10 -> 14/16
    assert accuracy(pred, truth, 3)[1] == pytest.approx(14 / 16)


def test_empty_rules():
    empty = np.zeros((3, 3), np.uint8)
    some = empty.copy()
    some[1, 1] = 2
    both_empty = dice(empty, empty, 3)
    assert np.isnan(both_empty[1]) and np.isnan(both_empty[2])
    assert dice(some, empty, 3)[2] == 0.0     # false positive on an empty truth: 0, not NaN
    assert dice(empty, some, 3)[2] == 0.0     # missed structure: 0
    assert np.isnan(recall(some, empty, 3)[2])


def test_inputs_not_mutated_and_shapes_checked():
    pred, truth = masks()
    p0, t0 = pred.copy(), truth.copy()
    dice(pred, truth, 3)
    assert (pred == p0).all() and (truth == t0).all()
    with pytest.raises(ValueError, match="shape"):
        dice(pred[:3], truth, 3)


def test_aggregate_excludes_and_counts_undefined(registry):
    from jmedbench.engine.evaluate import aggregate
    metrics = [registry.metric("dice")]
    rows = [("test", "s", 0, {"dice": [1.0, 0.8, float("nan")]}),
            ("test", "s", 1, {"dice": [1.0, 0.6, 0.9]})]
    out = aggregate(rows, metrics, 3)
    assert out["dice_cortical"] == pytest.approx(0.7)
    assert out["dice_cancellous"] == pytest.approx(0.9)
    assert out["dice_cancellous_undefined"] == 1
    assert out["dice"] == pytest.approx(0.8)


def test_hd95_and_assd_by_hand():
    from jmedbench_metrics.surface import assd, hd95
    truth = np.zeros((20, 20), np.uint8)
    truth[5:10, 5:10] = 1
    pred = np.zeros_like(truth)
    pred[5:10, 8:13] = 1  # the same square moved 3 columns right
    # spacing (row 2 mm, column 0.5 mm): a shift of 3 columns is 1.5 mm
    h = hd95(pred, truth, 3, spacing=(2.0, 0.5))
    assert h[1] == pytest.approx(1.5)
    assert np.isnan(h[2])                       # class absent from both: undefined
    assert hd95(truth, truth, 3, (1.0, 1.0))[1] == 0.0
    assert assd(truth, truth, 3, (1.0, 1.0))[1] == 0.0
    assert 0 < assd(pred, truth, 3, (2.0, 0.5))[1] <= 1.5
