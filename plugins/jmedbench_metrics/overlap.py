"""Overlap metrics per image (or per subject, its voxels pooled) and class from one confusion
count, never mutating the inputs."""

from __future__ import annotations

import numpy as np


def confusion(pred: np.ndarray, target: np.ndarray, num_classes: int) -> tuple[np.ndarray, ...]:
    """True positives, predicted counts and true counts per class, and the pixel total."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and truth {target.shape} differ in shape")
    p = pred.astype(np.int64, copy=False).ravel()
    t = target.astype(np.int64, copy=False).ravel()
    joint = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    matrix = joint.reshape(num_classes, num_classes)  # rows truth, columns prediction
    tp = np.diag(matrix).astype(np.float64)
    return tp, matrix.sum(0).astype(np.float64), matrix.sum(1).astype(np.float64), p.size


def _ratio(num: np.ndarray, den: np.ndarray, both_empty: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
    out[both_empty] = np.nan
    return out


def dice(pred, target, num_classes, spacing=None) -> np.ndarray:
    tp, npred, ntrue, _ = confusion(pred, target, num_classes)
    return _ratio(2 * tp, npred + ntrue, (npred == 0) & (ntrue == 0))


def iou(pred, target, num_classes, spacing=None) -> np.ndarray:
    tp, npred, ntrue, _ = confusion(pred, target, num_classes)
    return _ratio(tp, npred + ntrue - tp, (npred == 0) & (ntrue == 0))


def recall(pred, target, num_classes, spacing=None) -> np.ndarray:
    tp, _, ntrue, _ = confusion(pred, target, num_classes)
    return _ratio(tp, ntrue, ntrue == 0)


def accuracy(pred, target, num_classes, spacing=None) -> np.ndarray:
    tp, npred, ntrue, total = confusion(pred, target, num_classes)
    tn = total - npred - ntrue + tp
    return (tp + tn) / total


def subject_dice(pred, target, num_classes, spacing=None, contiguous=False) -> np.ndarray:
    """Dice over all of a subject's slices: the voxels pooled (3-D Dice)."""
    return dice(pred, target, num_classes)


def subject_iou(pred, target, num_classes, spacing=None, contiguous=False) -> np.ndarray:
    """IoU over all of a subject's slices: the voxels pooled (3-D IoU)."""
    return iou(pred, target, num_classes)
