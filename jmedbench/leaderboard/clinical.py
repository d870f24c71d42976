"""The clinical endpoint of an entry: would the source paper's conclusions hold with this
model's masks? And how well does its BMD agree with the reference as a clinician reads it?

Per run (seed), from its subject rows; then the mean and SD over seeds of every number.

- **Cohort analysis** (the paper's Eq. 2, D = -k * A + Z per sex x site, personal statistics,
  :func:`jmedbench.density.cohort.cohort_statistics`) on the test and cross-site subjects
  (one site each on the phantom), three times: on the BMDs of the predicted masks, of the
  reference masks and on the phantom's true BMDs (its age law plus each person's scatter).
  ``k_error`` / ``Z_error``: mean over sex x site groups of |k| / |Z| predicted minus
  reference; ``ratio_error``: mean over sites of |k_F/k_M predicted - k_F/k_M reference|;
  ``k_error_true`` / ``ratio_error_true`` the same against the true BMDs. Subjects whose BMD
  failed are left out of the predicted cohort (``cohort_left_out`` counts them).
- **Agreement** on the test subjects: Bland-Altman bias and 95 % limits of agreement, Lin's
  concordance correlation coefficient (measured BMDs only), the failure rate, and the
  misclassification rate at the L1 thresholds of :data:`L1_THRESHOLDS_HU`: the fraction of
  subjects whose predicted BMD falls on the other side of the threshold than the reference
  BMD; a failed BMD counts as misclassified (it gives the clinician no answer).
- **Estimators**: mean |error| over the measured test subjects of the mode (the benchmark's
  BMD, ``bmd_error``), of the mean and of the median of the cancellous HU (``bmd_mean_error``,
  ``bmd_median_error``: the estimator on the predicted mask minus the same on the reference).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jmedbench.density.cohort import CohortSubject, cohort_statistics, normalise_sex
from jmedbench.errors import UserError
from jmedbench.leaderboard.subject_scores import COHORT_SPLITS, RANKED_SPLIT, bmd_failed
from jmedbench.stats import limits_of_agreement, lin_concordance, mean_sd

L1_THRESHOLDS_HU = (100.0, 110.0, 160.0)
"""L1 trabecular attenuation thresholds (HU) of Pickhardt et al., Ann Intern Med
158(8):588-595, 2013: <= 160 HU 90 % sensitive and <= 110 HU more than 90 % specific for
DXA-defined osteoporosis, <= 100 HU about 90 % specific with a positive predictive value above
70 %."""
ESTIMATORS = (("mode", "bmd_error"), ("mean", "bmd_mean_error"), ("median", "bmd_median_error"))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        return None
    return float(value)


def _cohort(rows: list[dict[str, Any]], key: str) -> dict[tuple[str, str], float] | None:
    """(sex, site) -> k and Z of the personal statistics, and site -> F/M ratio, on the BMDs in
    ``key``; None when no sex x site group has 3 subjects."""
    members = []
    for row in rows:
        bmd, age = _number(row.get(key)), _number(row.get("age"))
        if key == "bmd_predicted" and bmd_failed(row):
            bmd = None
        if bmd is None or age is None or not row.get("sex") or not row.get("site"):
            continue
        members.append(CohortSubject(f"{row['split']}/{row['subject']}",
                                     normalise_sex(str(row["sex"])), str(row["site"]), age, bmd))
    if not members:
        return None
    try:
        result = cohort_statistics(members, small_groups="skip", unit="HU")
    except UserError:  # no group with enough subjects
        return None
    lines = {(g.sex, g.site): {"k": g.k, "Z": g.Z, "n": g.n_subjects}
             for g in result.groups if g.statistics == "personal" and math.isfinite(g.k)}
    ratios = {r["site"]: r["ratio"] for r in result.ratios() if r["statistics"] == "personal"}
    return {"lines": lines, "ratios": ratios}


def _errors(pred: dict | None, other: dict | None) -> dict[str, float | None]:
    if pred is None or other is None:
        return {"k": None, "Z": None, "ratio": None}
    shared = sorted(set(pred["lines"]) & set(other["lines"]))
    sites = sorted(set(pred["ratios"]) & set(other["ratios"]))
    mean = lambda xs: float(np.mean(xs)) if xs else None  # noqa: E731
    return {"k": mean([abs(pred["lines"][g]["k"] - other["lines"][g]["k"]) for g in shared]),
            "Z": mean([abs(pred["lines"][g]["Z"] - other["lines"][g]["Z"]) for g in shared]),
            "ratio": mean([abs(pred["ratios"][s] - other["ratios"][s]) for s in sites])}


def run_endpoint(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The numbers of one run (its subject rows)."""
    cohort_rows = [r for r in rows if r["split"] in COHORT_SPLITS]
    predicted = _cohort(cohort_rows, "bmd_predicted")
    reference = _cohort(cohort_rows, "bmd_reference")
    true = _cohort(cohort_rows, "bmd_true")
    vs_reference, vs_true = _errors(predicted, reference), _errors(predicted, true)
    out: dict[str, Any] = {
        "k_error": vs_reference["k"], "Z_error": vs_reference["Z"],
        "ratio_error": vs_reference["ratio"], "k_error_true": vs_true["k"],
        "ratio_error_true": vs_true["ratio"],
        "cohort_left_out": sum(1 for r in cohort_rows if bmd_failed(r)),
    }
    test = [r for r in rows if r["split"] == RANKED_SPLIT and _number(r.get("bmd_reference"))
            is not None]
    measured = [r for r in test if not bmd_failed(r) and _number(r.get("bmd_predicted"))
                is not None]
    pred = np.array([r["bmd_predicted"] for r in measured], dtype=np.float64)
    ref = np.array([r["bmd_reference"] for r in measured], dtype=np.float64)
    out.update(limits_of_agreement(pred, ref))
    out["ccc"] = lin_concordance(pred, ref)
    out["failure_rate"] = (sum(1 for r in test if bmd_failed(r)) / len(test)) if test else None
    for threshold in L1_THRESHOLDS_HU:
        wrong = [bmd_failed(r) or _number(r.get("bmd_predicted")) is None
                 or (r["bmd_predicted"] <= threshold) != (r["bmd_reference"] <= threshold)
                 for r in test]
        out[f"misclassified_{threshold:g}"] = float(np.mean(wrong)) if test else None
    for name, key in ESTIMATORS:
        errors = [abs(v) for v in (_number(r.get(key)) for r in measured) if v is not None]
        out[f"abs_error_{name}"] = float(np.mean(errors)) if errors else None
    out["groups"] = {f"{sex}/{site}": {
        "k_predicted": predicted["lines"].get((sex, site), {}).get("k") if predicted else None,
        "k_reference": line["k"],
        "k_true": true["lines"].get((sex, site), {}).get("k") if true else None,
        "Z_predicted": predicted["lines"].get((sex, site), {}).get("Z") if predicted else None,
        "Z_reference": line["Z"],
        "Z_true": true["lines"].get((sex, site), {}).get("Z") if true else None,
        "n": line["n"]} for (sex, site), line in (reference["lines"].items() if reference
                                                  else [])}
    out["ratios"] = {site: {"predicted": (predicted or {}).get("ratios", {}).get(site),
                            "reference": ratio,
                            "true": (true or {}).get("ratios", {}).get(site)}
                     for site, ratio in (reference["ratios"].items() if reference else [])}
    return out


NUMBERS = ("k_error", "Z_error", "ratio_error", "k_error_true", "ratio_error_true", "bias",
           "loa_low", "loa_high", "ccc", "failure_rate",
           *(f"misclassified_{t:g}" for t in L1_THRESHOLDS_HU),
           *(f"abs_error_{name}" for name, _ in ESTIMATORS))


def entry_endpoint(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Mean and SD over the entry's seeds of every number of :func:`run_endpoint`, and the
    per-seed details; None without subject rows."""
    by_seed: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        by_seed.setdefault(row["seed"], []).append(row)
    if not by_seed:
        return None
    runs = {seed: run_endpoint(seed_rows) for seed, seed_rows in sorted(by_seed.items())}
    out: dict[str, Any] = {key: mean_sd([r[key] for r in runs.values()]) for key in NUMBERS}
    out["seeds"] = {str(seed): {"groups": r["groups"], "ratios": r["ratios"],
                                "cohort_left_out": r["cohort_left_out"]}
                    for seed, r in runs.items()}
    return out
