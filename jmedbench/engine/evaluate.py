"""Scoring predictions: image metrics per slice and class, aggregated explicitly (as MONAI),
then dataset metrics (density) per split.

Aggregation: for each image metric and class, the mean over the images where it is defined
(NaN excluded and counted in ``<metric>_<class>_undefined``); the headline ``<metric>`` is the
mean of the foreground class means (cortical, cancellous).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jmedbench.data import Evaluation, Subject
from jmedbench.labels import class_name
from jmedbench.specs import MetricSpec


def image_metric_rows(split: str, subjects: list[Subject], predictions: list[np.ndarray],
                      metrics: list[MetricSpec], num_classes: int
                      ) -> list[tuple[str, str, int, dict[str, list[float]]]]:
    """One row per slice: (split, subject id, slice index, {metric: per-class values})."""
    rows = []
    for subject, pred in zip(subjects, predictions):
        spacing = subject.spacing[1:]
        for i in range(subject.n_slices):
            values = {m.name: np.asarray(m.compute(pred[i], subject.label[i], num_classes,
                                                   spacing), dtype=np.float64).tolist()
                      for m in metrics}
            rows.append((split, subject.subject_id, i, values))
    return rows


def aggregate(rows: list[tuple[str, str, int, dict[str, list[float]]]],
              metrics: list[MetricSpec], num_classes: int, prefix: str = "") -> dict[str, Any]:
    """Per-class means over images (NaN excluded, counted) and the foreground headline."""
    out: dict[str, Any] = {}
    for metric in metrics:
        table = np.array([r[3][metric.name] for r in rows], dtype=np.float64)
        if table.size == 0:
            continue
        class_means = []
        for c in range(1, num_classes):
            column = table[:, c]
            defined = ~np.isnan(column)
            name = class_name(c)
            mean = float(column[defined].mean()) if defined.any() else float("nan")
            out[f"{prefix}{metric.name}_{name}"] = mean
            out[f"{prefix}{metric.name}_{name}_undefined"] = int((~defined).sum())
            class_means.append(mean)
        out[f"{prefix}{metric.name}"] = float(np.nanmean(class_means)) if not np.all(
            np.isnan(class_means)) else float("nan")
    out[f"{prefix}images"] = len(rows)
    return out


def dataset_metrics(evaluation: Evaluation, metrics: list[MetricSpec], prefix: str = "",
                    details: dict[str, Any] | None = None) -> tuple[dict[str, float], list[str]]:
    """Dataset-scope metrics (e.g. BMD agreement). A metric that fails is reported, not fatal.

    A metric's numbers are the metrics; anything else it returns (a list of per-subject
    failures with their reasons, say) goes into ``details`` under the same prefixed key when a
    dict is given, and is dropped otherwise."""
    out: dict[str, float] = {}
    problems: list[str] = []
    for metric in metrics:
        try:
            values = metric.compute(evaluation)
        except Exception as exc:  # one metric's failure must not lose the others
            problems.append(f"metric '{metric.name}' failed: {type(exc).__name__}: {exc}")
            continue
        for key, value in values.items():
            if isinstance(value, (int, float, np.integer, np.floating)):
                out[f"{prefix}{key}"] = value
            elif details is not None:
                details[f"{prefix}{key}"] = value
    return out, problems
