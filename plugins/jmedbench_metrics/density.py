"""The downstream metric: how far the BMD measured on a model's cancellous mask is from the BMD
measured on the ground-truth mask (and from the true BMD where a phantom knows it).

Per subject: BMD = mode of the Johnson-Su fit to the HU values under the mask, all slices
pooled (:func:`jmedbench.density.bmd_from_mask`), predicted mask and ground-truth mask read on
the same image (the evaluation's image: a corrupted copy under the robustness suite). Then over
the subjects (errors are predicted minus reference, in HU):

    bmd_subjects          subjects with both BMDs
    bmd_failed            subjects whose predicted mask has no cancellous pixel, or whose
                          values cannot be fitted: counted here, never silently dropped;
                          ``bmd_failures`` (in the run's details) names each with its reason
    bmd_failure_rate      bmd_failed / subjects with a ground-truth BMD (a failure ranks
                          below any measured error; the subject rows carry bmd_failed)
    bmd_reference_missing subjects whose ground-truth mask has no cancellous pixel (skipped)
    bmd_warned            predicted-mask BMDs that carry a warning (leak, poor fit, ...)
    bmd_mae, bmd_bias     mean absolute error and mean error against the ground-truth mask
    bmd_loa_low/high      Bland-Altman 95% limits of agreement: bias -+ 1.96 SD (SD with n-1)
    bmd_r                 Pearson correlation of predicted and reference BMD
    bmd_category_agreement  fraction of subjects put in the same bone-status category
    bmd_category_kappa    Cohen's kappa of those categories
    bmd_mean_mae, bmd_median_mae  the MAE of the simpler estimators: the mean (median) of the
                          cancellous HU under the predicted mask minus the same on the
                          ground-truth mask, over the same subjects as bmd_mae (how much the
                          Johnson-Su mode protects the measurement from segmentation errors)
    bmd_true_mae/bias     against the subject's true BMD (phantoms), and bmd_reference_true_mae
                          for the ground-truth mask (the floor set by the fit itself)
    bmd_k_error           mean over sex x site groups of |k(predicted) - k(ground truth)|, the
                          age slope of D = -k * age + Z in HU/year (personal statistics);
                          bmd_k_groups = groups with at least 3 subjects with an age. When no
                          group has 3, bmd_k_error is omitted and bmd_k_groups is 0.

Per subject (``subject_values``, merged into the run's subject rows): bmd_reference,
bmd_predicted (None when it cannot be measured), bmd_error (predicted - reference, None when
either failed), bmd_failed, bmd_failure (the reason or None), bmd_mean_error,
bmd_median_error (None when either mask has no cancellous pixel) and bmd_true (phantoms).

Undefined values (a correlation of fewer than 3 subjects, limits of agreement of 1) are NaN.
Categories: L1 trabecular attenuation thresholds of Pickhardt et al. 2013 (see
``BONE_STATUS_THRESHOLDS_HU``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jmedbench.data import Evaluation
from jmedbench.density.bmd import CANCELLOUS_LABEL, EmptyMaskError, bmd_from_mask
from jmedbench.density.cohort import fit_age_line
from jmedbench.errors import UserError
from jmedbench.specs import SUBJECT_VALUES

PICKHARDT_2013 = ("Pickhardt PJ, Pooler BD, Lauder T, Munoz del Rio A, Bruce RJ, Binkley N. "
                  "Opportunistic screening for osteoporosis using abdominal computed tomography "
                  "scans obtained for other indications. Ann Intern Med 2013;158(8):588-595")
BONE_STATUS_THRESHOLDS_HU = (110.0, 160.0)
"""L1 trabecular attenuation (HU) in Pickhardt et al. 2013: <= 160 HU was 90% sensitive and
<= 110 HU more than 90% specific for DXA-defined osteoporosis. Categories: <= 110 osteoporosis,
(110, 160] osteopenia range (indeterminate), > 160 normal."""
BONE_STATUS = ("osteoporosis", "osteopenia", "normal")
MIN_SLOPE_SUBJECTS = 3


def bone_status(bmd_hu: float) -> int:
    """0 osteoporosis (<= 110 HU), 1 osteopenia range (110-160 HU], 2 normal (> 160 HU)."""
    low, high = BONE_STATUS_THRESHOLDS_HU
    return 0 if bmd_hu <= low else (1 if bmd_hu <= high else 2)


def cohen_kappa(a: list[int], b: list[int], categories: int = 3) -> float:
    """Cohen's kappa; NaN when chance agreement is 1 (every rating in one category)."""
    if not a:
        return float("nan")
    table = np.zeros((categories, categories))
    for i, j in zip(a, b):
        table[i, j] += 1
    n = table.sum()
    observed = np.trace(table) / n
    expected = float((table.sum(0) * table.sum(1)).sum()) / (n * n)
    return float("nan") if expected >= 1.0 else float((observed - expected) / (1.0 - expected))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def agreement(predicted: np.ndarray, reference: np.ndarray, prefix: str) -> dict[str, float]:
    """MAE, bias, Bland-Altman limits and Pearson r of predicted against reference."""
    diff = predicted - reference
    nan = float("nan")
    if diff.size == 0:
        return {f"{prefix}_mae": nan, f"{prefix}_bias": nan}
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1)) if diff.size >= 2 else nan
    return {f"{prefix}_mae": float(np.abs(diff).mean()), f"{prefix}_bias": bias,
            f"{prefix}_loa_low": bias - 1.96 * sd, f"{prefix}_loa_high": bias + 1.96 * sd,
            f"{prefix}_r": _pearson(predicted, reference)}


def _cancellous_values(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.asarray(image)[np.asarray(mask) == CANCELLOUS_LABEL].astype(np.float64)


def subject_bmds(evaluation: Evaluation) -> list[dict[str, Any]]:
    """Per subject: predicted-mask and ground-truth-mask BMD (HU), or why one is missing, and
    the simpler estimators (mean, median of the cancellous HU) on both masks."""
    rows = []
    for subject, image, prediction in evaluation:
        row: dict[str, Any] = {"subject": subject.subject_id, "sex": subject.sex,
                               "site": subject.site, "age": subject.age,
                               "true_bmd": subject.true_bmd}
        try:
            row["reference"] = bmd_from_mask(image, subject.label, CANCELLOUS_LABEL).bmd_hu
        except UserError as exc:
            row["reference_error"] = str(exc)
        try:
            result = bmd_from_mask(image, prediction, CANCELLOUS_LABEL)
            row["predicted"] = result.bmd_hu
            row["warnings"] = result.warnings
        except (EmptyMaskError, UserError) as exc:  # the fit raises nothing else
            row["predicted_error"] = str(exc)
        truth_hu = _cancellous_values(image, subject.label)
        pred_hu = _cancellous_values(image, prediction)
        if truth_hu.size and pred_hu.size:
            row["mean_error"] = float(pred_hu.mean() - truth_hu.mean())
            row["median_error"] = float(np.median(pred_hu) - np.median(truth_hu))
        rows.append(row)
    return rows


def subject_values(row: dict[str, Any]) -> dict[str, Any]:
    """One subject's BMD values for the run's subject rows (None where not measured)."""
    reference, predicted = row.get("reference"), row.get("predicted")
    out = {"bmd_reference": reference, "bmd_predicted": predicted,
           "bmd_error": (predicted - reference
                         if predicted is not None and reference is not None else None),
           "bmd_failed": predicted is None, "bmd_failure": row.get("predicted_error"),
           "bmd_mean_error": row.get("mean_error"), "bmd_median_error": row.get("median_error")}
    if row["true_bmd"] is not None:
        out["bmd_true"] = float(row["true_bmd"])
    return out


def slope_error(rows: list[dict[str, Any]]) -> dict[str, float]:
    """|k(predicted) - k(reference)| averaged over sex x site groups with enough aged subjects."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        if "predicted" in row and "reference" in row and row["age"] is not None:
            groups.setdefault((row["sex"], row["site"]), []).append(row)
    errors = []
    for members in groups.values():
        ages = [m["age"] for m in members]
        if len(members) < MIN_SLOPE_SUBJECTS or np.ptp(ages) == 0:
            continue
        k_pred = fit_age_line(ages, [m["predicted"] for m in members]).k
        k_ref = fit_age_line(ages, [m["reference"] for m in members]).k
        errors.append(abs(k_pred - k_ref))
    out = {"bmd_k_groups": float(len(errors))}
    if errors:
        out["bmd_k_error"] = float(np.mean(errors))
    return out


def bmd_agreement(evaluation: Evaluation) -> dict[str, Any]:
    """The dataset-scope metric (see the module docstring for every key); ``bmd_failures`` is
    the one non-number: [{subject, reason}] for every subject in ``bmd_failed``."""
    rows = subject_bmds(evaluation)
    both = [r for r in rows if "predicted" in r and "reference" in r]
    predicted = np.array([r["predicted"] for r in both], dtype=np.float64)
    reference = np.array([r["reference"] for r in both], dtype=np.float64)
    out: dict[str, float] = {
        "bmd_subjects": float(len(both)),
        "bmd_failed": float(sum("predicted" not in r for r in rows if "reference" in r)),
        "bmd_reference_missing": float(sum("reference" not in r for r in rows)),
        "bmd_warned": float(sum(bool(r.get("warnings")) for r in both)),
    }
    with_reference = sum("reference" in r for r in rows)
    out["bmd_failure_rate"] = (out["bmd_failed"] / with_reference if with_reference
                               else float("nan"))
    out.update(agreement(predicted, reference, "bmd"))
    for estimator in ("mean", "median"):  # the same subjects as bmd_mae
        errors = np.array([r[f"{estimator}_error"] for r in both], dtype=np.float64)
        out[f"bmd_{estimator}_mae"] = (float(np.abs(errors).mean()) if errors.size
                                       else float("nan"))
    cats_pred = [bone_status(v) for v in predicted]
    cats_ref = [bone_status(v) for v in reference]
    out["bmd_category_agreement"] = (float(np.mean([p == r for p, r in zip(cats_pred, cats_ref)]))
                                     if both else float("nan"))
    out["bmd_category_kappa"] = cohen_kappa(cats_pred, cats_ref)
    with_truth = [r for r in both if r["true_bmd"] is not None]
    if with_truth:
        truth = np.array([r["true_bmd"] for r in with_truth], dtype=np.float64)
        pred_t = np.array([r["predicted"] for r in with_truth], dtype=np.float64)
        ref_t = np.array([r["reference"] for r in with_truth], dtype=np.float64)
        out["bmd_true_mae"] = float(np.abs(pred_t - truth).mean())
        out["bmd_true_bias"] = float((pred_t - truth).mean())
        out["bmd_reference_true_mae"] = float(np.abs(ref_t - truth).mean())
    out.update(slope_error(rows))
    result: dict[str, Any] = {k: (v if math.isfinite(v) else float("nan"))
                              for k, v in out.items()}
    failures = [{"subject": r["subject"], "reason": r["predicted_error"]}
                for r in rows if "reference" in r and "predicted" not in r]
    if failures:
        result["bmd_failures"] = failures
    result[SUBJECT_VALUES] = {r["subject"]: subject_values(r) for r in rows}
    return result
