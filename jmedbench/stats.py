"""Summary statistics shared by leaderboards, ablations and robustness: finite means and the
two-sided t-interval of a mean over seeds."""

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
