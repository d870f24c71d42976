"""Summary statistics shared by leaderboards, ablations and robustness: finite means and the
two-sided t-interval of a mean over seeds; for rankings over subjects, the paired bootstrap of
means (scipy), the paired Wilcoxon signed-rank test (scipy) with Holm's correction
(statsmodels), Kendall's tau (scipy), Bland-Altman limits and Lin's concordance."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats


def finite(values: list[Any]) -> list[float]:
    """The values that are numbers, neither None nor NaN nor infinite."""
    return [float(v) for v in values if v is not None and np.isfinite(float(v))]


def finite_mean(values: list[Any]) -> float | None:
    """Mean of the finite values; None when there are none."""
    kept = finite(values)
    return float(np.mean(kept)) if kept else None


def _t_interval(values: list[Any], confidence: float) -> tuple[list[float], float | None,
                                                                float | None]:
    """(finite values, mean, half-width of mean +- t_{n-1} * s / sqrt(n)); None where
    undefined (no value, or one value for the half-width)."""
    clean = finite(values)
    if not clean:
        return clean, None, None
    mean = float(np.mean(clean))
    if len(clean) < 2:
        return clean, mean, None
    t = stats.t.ppf(0.5 + confidence / 2, len(clean) - 1)
    return clean, mean, float(t * np.std(clean, ddof=1) / math.sqrt(len(clean)))


def mean_ci(values: list[Any], confidence: float = 0.95) -> dict[str, Any]:
    """Mean and the interval's bounds, as leaderboard entries store them:
    ``{"mean", "ci95": [low, high] or None, "n"}`` (None where undefined)."""
    clean, mean, half = _t_interval(values, confidence)
    bounds = None if half is None else [mean - half, mean + half]
    return {"mean": mean, "ci95": bounds, "n": len(clean)}


def mean_half_width(values: list[Any], confidence: float = 0.95) -> dict[str, Any]:
    """Mean and the interval's half-width, as ablation tables print them (mean ± half-width):
    ``{"mean", "ci95", "n", "missing", "values"}``, NaN where undefined, ``missing`` counting
    the values dropped as None or NaN."""
    clean, mean, half = _t_interval(values, confidence)
    nan = float("nan")
    return {"mean": nan if mean is None else mean, "ci95": nan if half is None else half,
            "n": len(clean), "missing": len(values) - len(clean), "values": clean}


def sd(values: list[Any]) -> float | None:
    """Sample standard deviation (n - 1) of the finite values; None under two values."""
    clean = finite(values)
    return float(np.std(clean, ddof=1)) if len(clean) >= 2 else None


def mean_sd(values: list[Any]) -> dict[str, Any]:
    """``{"mean", "sd", "n"}`` of the finite values (None where undefined): a number over
    seeds as leaderboard columns show it, mean and spread."""
    return {"mean": finite_mean(values), "sd": sd(values), "n": len(finite(values))}


def paired_bootstrap_means(columns: np.ndarray, n_resamples: int = 1000, seed: int = 0,
                           confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bootstrap of the column means of ``columns`` (subjects x entries), resampling subjects
    jointly: every resample draws the same subjects for every column
    (``scipy.stats.bootstrap(paired=True)``), so rankings of the resampled means are rankings
    on one resampled cohort. Percentile intervals (they stay defined when a column is
    constant, where BCa is not). Returns (low, high, distribution of shape
    (entries, n_resamples))."""
    columns = np.asarray(columns, dtype=np.float64)
    samples = [columns[:, j] for j in range(columns.shape[1])]

    def means(*resampled, axis=-1):
        return np.stack([np.mean(x, axis=axis) for x in resampled])

    result = stats.bootstrap(samples, means, paired=True, vectorized=True,
                             n_resamples=n_resamples, confidence_level=confidence,
                             method="percentile", rng=np.random.default_rng(seed))
    return (np.atleast_1d(result.confidence_interval.low),
            np.atleast_1d(result.confidence_interval.high),
            np.atleast_2d(result.bootstrap_distribution))


EXACT_WILCOXON_MAX_N = 50


def paired_wilcoxon(differences: np.ndarray, alternative: str = "two-sided") -> np.ndarray:
    """p-values of the Wilcoxon signed-rank test, one per row of ``differences`` (pairs x
    subjects: paired differences on the same subjects). As R's ``wilcox.test`` (which
    challengeR calls): the exact distribution for under 50 subjects without zero or tied
    differences, else the normal approximation with the tie correction and a continuity
    correction, zero differences dropped (scipy's ``method="auto"`` would run a permutation
    test there, seconds per pair). ``alternative="greater"``: the first of the pair is larger.
    A row whose differences are all zero has p = 1 (no evidence of any difference) where scipy
    returns NaN."""
    differences = np.atleast_2d(np.asarray(differences, dtype=np.float64))
    p = np.ones(differences.shape[0])
    magnitudes = np.sort(np.abs(differences), axis=1)
    testable = np.any(magnitudes > 0, axis=1)
    clean = (np.all(magnitudes > 0, axis=1) & np.all(np.diff(magnitudes, axis=1) > 0, axis=1)
             & (differences.shape[1] < EXACT_WILCOXON_MAX_N))
    with np.errstate(invalid="ignore", divide="ignore"):
        for rows, method in ((testable & clean, "exact"), (testable & ~clean, "approx")):
            if rows.any():
                p[rows] = stats.wilcoxon(differences[rows], axis=-1, alternative=alternative,
                                         method=method,
                                         correction=method == "approx").pvalue
    return np.where(np.isnan(p), 1.0, p)


def holm(pvalues: list[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), statsmodels' ``multipletests``."""
    import gc

    from statsmodels.stats.multitest import multipletests  # imports pandas: only when needed

    pvalues = np.asarray(pvalues, dtype=np.float64)
    if pvalues.size == 0:
        return pvalues
    # multipletests(method="holm") ends with a full gc.collect() (0.8 s in a process that has
    # imported pandas and matplotlib); frozen objects are not scanned, and unfreeze returns
    # them to the collector
    gc.freeze()
    try:
        return multipletests(pvalues, method="holm")[1]
    finally:
        gc.unfreeze()


def kendall_tau(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> float:
    """Kendall's tau-b of two rankings (scipy); NaN when either is constant."""
    if len(a) < 2:
        return float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(stats.kendalltau(a, b).statistic)


def limits_of_agreement(predicted: np.ndarray, reference: np.ndarray) -> dict[str, float | None]:
    """Bland-Altman: bias (mean of predicted - reference) and the 95% limits of agreement,
    bias -+ 1.96 SD of the differences (SD with n - 1); None where undefined."""
    diff = np.asarray(predicted, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    if diff.size == 0:
        return {"bias": None, "loa_low": None, "loa_high": None}
    bias = float(diff.mean())
    if diff.size < 2:
        return {"bias": bias, "loa_low": None, "loa_high": None}
    half = 1.96 * float(diff.std(ddof=1))
    return {"bias": bias, "loa_low": bias - half, "loa_high": bias + half}


def lin_concordance(x: np.ndarray, y: np.ndarray) -> float | None:
    """Lin's concordance correlation coefficient, 2 s_xy / (s_x^2 + s_y^2 + (mean_x - mean_y)^2)
    with population (1/n) moments (Lin, Biometrics 45(1), 1989); None under two pairs or when
    both are constant and equal."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 2:
        return None
    denominator = x.var() + y.var() + (x.mean() - y.mean()) ** 2
    if denominator == 0:
        return None
    return float(2 * np.mean((x - x.mean()) * (y - y.mean())) / denominator)
