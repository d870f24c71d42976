"""Per-subject scores of an entry, read from the store's subject rows of each of its runs
(one run per seed).

A subject row (``Store.subject_metrics``) holds, per split and subject: the overlap and surface
scores by class id (``dice``, ``iou``, ``nsd``, ``hd95``, ``assd``: lists [background,
cortical, cancellous], null where not scored, worst values already given to empty
predictions), the BMD of the reference and predicted masks (``bmd_reference``,
``bmd_predicted``, ``bmd_error`` = predicted - reference, ``bmd_failed``, ``bmd_failure``),
the errors of the mean and median estimators (``bmd_mean_error``, ``bmd_median_error``), the
phantom's ``bmd_true`` and the subject's ``sex``, ``age``, ``site``.

What is ranked (:data:`SCORES`): each class-wise score as the mean over the foreground classes
(as the run's headline Dice is), and the BMD error as ``|bmd_error|``. A failed BMD has no
error here (None, with ``bmd_failed`` true); :mod:`~jmedbench.leaderboard.ranking` gives it a
value worse than any measured one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from jmedbench.labels import BACKGROUND_LABEL, NUM_CLASSES

RANKED_SPLIT = "test"
"""The split rankings are computed on: the clean test subjects (the same for every entry of a
dataset and profile)."""
COHORT_SPLITS = ("test", "shift")
"""The splits the cohort analysis pools: one site each on the phantom, so that the paper's
Eq. 2 has a line per sex x site."""
BMD_SCORE = "bmd_abs_error"


@dataclass(frozen=True)
class Score:
    """A per-subject number rankings are computed on."""

    key: str
    title: str
    digits: int
    higher_is_better: bool
    description: str


CLASS_SCORES = (
    Score("dice", "Dice", 4, True, "Dice, mean of cortical and cancellous"),
    Score("iou", "IoU", 4, True, "IoU, mean of cortical and cancellous"),
    Score("nsd", "NSD", 4, True, "normalised surface Dice at the stored tolerance"),
    Score("hd95", "HD95 mm", 2, False, "95th-percentile Hausdorff distance (mm)"),
    Score("assd", "ASSD mm", 2, False, "average symmetric surface distance (mm)"),
)
SCORES = CLASS_SCORES + (
    Score(BMD_SCORE, "BMD |error| HU", 2, False,
          "|BMD of the predicted mask - BMD of the reference mask| (HU); a failed BMD ranks "
          "below every measured error"),
)


def ordered_scores(headline: str) -> list[Score]:
    """:data:`SCORES` with the headline metric's score first (tables lead with it)."""
    return sorted(SCORES, key=lambda s: s.key != headline)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def foreground_mean(values: Any) -> float | None:
    """Mean of a by-class list over the foreground classes that are scored; None if none."""
    if not isinstance(values, list):
        return None
    kept = [float(v) for c, v in enumerate(values[:NUM_CLASSES])
            if c != BACKGROUND_LABEL and _finite(v)]
    return sum(kept) / len(kept) if kept else None


def subject_scores(row: dict[str, Any]) -> dict[str, float | None]:
    """The ranked scores of one subject row (None where not scored or, for the BMD error,
    where the BMD failed)."""
    out: dict[str, float | None] = {s.key: foreground_mean(row.get(s.key)) for s in CLASS_SCORES}
    error = row.get("bmd_error")
    out[BMD_SCORE] = abs(float(error)) if not row.get("bmd_failed") and _finite(error) else None
    return out


def bmd_failed(row: dict[str, Any]) -> bool:
    return bool(row.get("bmd_failed"))


def entry_subject_rows(store: Any, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Every subject row of the entry's runs, with its ``seed``, ``run_id`` and ``scores``
    (:func:`subject_scores`); empty for runs stored before subject rows existed."""
    rows = []
    for run_id, seed in zip(entry["runs"], entry["seeds"]):
        for row in store.subject_metrics(run_id):
            rows.append({"seed": seed, "run_id": run_id, **row, "scores": subject_scores(row)})
    return rows
