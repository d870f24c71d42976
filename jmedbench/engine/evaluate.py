"""Scoring predictions: image metrics per slice and class and, for those with a
``subject_compute``, per subject over all of its slices, aggregated explicitly (as MONAI); then
dataset metrics (density) per split.

Aggregation: for each image metric and class, the mean over the images where it is defined
(NaN excluded and counted in ``<metric>_<class>_undefined``); the headline ``<metric>`` is the
mean of the foreground class means (cortical, cancellous). These are per-slice means. The
per-subject scores are stored as the run's subject rows (the unit of the leaderboard's
statistics) and averaged over subjects the same way as ``<metric>_3d_<class>``,
``<metric>_3d`` (with ``subjects`` their count).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jmedbench.data import Evaluation, Subject
from jmedbench.labels import class_name
from jmedbench.specs import SUBJECT_VALUES, MetricSpec

SubjectRow = tuple[str, str, dict[str, Any]]


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


def subject_metric_rows(split: str, subjects: list[Subject], predictions: list[np.ndarray],
                        metrics: list[MetricSpec], num_classes: int) -> list[SubjectRow]:
    """One row per subject: (split, subject id, {metric: per-class values over its slices,
    each metric's ``parameters``, and the subject's sex, age and site when known}); metrics
    without a ``subject_compute`` are skipped."""
    scored = [m for m in metrics if m.subject_compute is not None]
    rows = []
    for subject, pred in zip(subjects, predictions):
        values: dict[str, Any] = {}
        for metric in scored:
            values[metric.name] = np.asarray(metric.subject_compute(
                pred, subject.label, num_classes, tuple(subject.spacing), subject.contiguous),
                dtype=np.float64).tolist()
            values.update(metric.parameters)
        for key in ("sex", "age", "site"):
            if getattr(subject, key) not in (None, ""):
                values[key] = getattr(subject, key)
        rows.append((split, subject.subject_id, values))
    return rows


def add_subject_values(rows: list[SubjectRow], values: dict[str, dict[str, Any]]
                       ) -> list[SubjectRow]:
    """The rows with the dataset metrics' per-subject values (:data:`SUBJECT_VALUES`) added."""
    return [(split, subject, {**row, **values.get(subject, {})})
            for split, subject, row in rows]


def _class_means(tables: dict[str, np.ndarray], num_classes: int, prefix: str,
                 infix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, table in tables.items():
        if table.size == 0:
            continue
        class_means = []
        for c in range(1, num_classes):
            column = table[:, c]
            defined = ~np.isnan(column)
            key = f"{prefix}{name}{infix}_{class_name(c)}"
            mean = float(column[defined].mean()) if defined.any() else float("nan")
            out[key] = mean
            out[f"{key}_undefined"] = int((~defined).sum())
            class_means.append(mean)
        out[f"{prefix}{name}{infix}"] = float(np.nanmean(class_means)) if not np.all(
            np.isnan(class_means)) else float("nan")
    return out


def aggregate(rows: list[tuple[str, str, int, dict[str, list[float]]]],
              metrics: list[MetricSpec], num_classes: int, prefix: str = "") -> dict[str, Any]:
    """Per-class means over images (NaN excluded, counted) and the foreground headline."""
    tables = {m.name: np.array([r[3][m.name] for r in rows], dtype=np.float64)
              for m in metrics}
    out = _class_means(tables, num_classes, prefix)
    out[f"{prefix}images"] = len(rows)
    return out


def aggregate_subjects(rows: list[SubjectRow], metrics: list[MetricSpec], num_classes: int,
                       prefix: str = "") -> dict[str, Any]:
    """Per-class means over subjects (``<metric>_3d_<class>``, NaN excluded and counted) and
    their foreground mean ``<metric>_3d``, for the metrics scored per subject."""
    tables = {m.name: np.array([r[2][m.name] for r in rows], dtype=np.float64)
              for m in metrics if m.subject_compute is not None}
    out = _class_means(tables, num_classes, prefix, "_3d")
    out[f"{prefix}subjects"] = len(rows)
    return out


def dataset_metrics(evaluation: Evaluation, metrics: list[MetricSpec], prefix: str = "",
                    details: dict[str, Any] | None = None,
                    subject_values: dict[str, dict[str, Any]] | None = None
                    ) -> tuple[dict[str, float], list[str]]:
    """Dataset-scope metrics (e.g. BMD agreement). A metric that fails is reported, not fatal.

    A metric's numbers are the metrics; its per-subject values (:data:`SUBJECT_VALUES`) are
    merged into ``subject_values`` ({subject id: {name: value}}) when a dict is given; anything
    else it returns (a list of per-subject failures with their reasons, say) goes into
    ``details`` under the same prefixed key when a dict is given. Both are dropped otherwise."""
    out: dict[str, float] = {}
    problems: list[str] = []
    for metric in metrics:
        try:
            values = metric.compute(evaluation)
        except Exception as exc:  # one metric's failure must not lose the others
            problems.append(f"metric '{metric.name}' failed: {type(exc).__name__}: {exc}")
            continue
        for subject, per_subject in values.pop(SUBJECT_VALUES, {}).items():
            if subject_values is not None:
                subject_values.setdefault(subject, {}).update(per_subject)
        for key, value in values.items():
            if isinstance(value, (int, float, np.integer, np.floating)):
                out[f"{prefix}{key}"] = value
            elif details is not None:
                details[f"{prefix}{key}"] = value
    return out, problems
