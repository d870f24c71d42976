"""Bone mineral density of a subject from a mask: the mode of a Johnson-Su fit to the HU values
of its cancellous pixels (all slices pooled, as the paper pools L1 and L2), with the checks a
reader of the number needs: too few pixels, a leaky mask, a poor or unconverged fit.

Conventions: images are in HU. ``stored_values=True`` reports BMD as the scanner's stored value
HU + 1024, the unit of the paper's figures (its Figure 6 mode 1152.54 is 128.54 HU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jmedbench.density.johnsonsu import FitInputError, JohnsonSuFit, fit_johnson_su
from jmedbench.errors import UserError
from jmedbench.labels import CANCELLOUS_LABEL, STORED_VALUE_OFFSET

# A second KDE peak counts when it is at least this high relative to the main peak and the
# density between them dips to at most MAX_DIP of its height (a broad cortical leak of 10% of
# the pixels has a peak ~4% as high as the cancellous one).
MIN_PEAK_HEIGHT = 0.02
MAX_DIP = 0.6


class EmptyMaskError(UserError):
    """The mask has no pixel of the requested label: there is nothing to measure."""


@dataclass(frozen=True)
class BmdChecks:
    """Thresholds of the warnings (each warning prints the numbers it compared).

    min_pixels: fewer pixels than this are too few for a stable 4-parameter fit.
    max_mode_se: the mode's standard error (HU) above which the BMD is imprecise.
    mode_median_sd / mode_median_hu: the fitted mode is further than both this many robust
      SDs (IQR / 1.349) and this many HU from the median. No Johnson-Su distribution puts them
      further apart than 0.587 robust SD (the supremum, approached at b = 1 as |a| grows;
      the paper's Figure 6 fit: 0.18); the margin above it absorbs the sampling noise of small
      masks. Only a strongly skewed mixture (a leak) goes beyond.
    peak_fraction / peak_excess_z: a second peak of the pixels' density (cortical bone or soft
      tissue inside the mask) is reported when at least this fraction of the pixels lie beyond
      the dip before it and that is at least peak_excess_z binomial SDs more than the fitted
      Johnson-Su puts there (tail bumps of a heavy-tailed clean sample stay below 2.1 SDs in
      500 simulated clean masks of 300 to 20,000 pixels; see tests/test_density.py).
    max_ks: Kolmogorov-Smirnov distance between the pixels and the fitted distribution above
      which the fit is called poor (also at least 1.63 / sqrt(n), the 1% critical value, so
      that sampling noise of small masks is not reported).
    plausible_hu: a BMD outside this range is implausible for cancellous bone (values not in
      HU, e.g. stored values, or the wrong label).
    """

    min_pixels: int = 200
    max_mode_se: float = 3.0
    mode_median_sd: float = 0.75
    mode_median_hu: float = 10.0
    peak_fraction: float = 0.03
    peak_excess_z: float = 3.0
    max_ks: float = 0.03
    plausible_hu: tuple[float, float] = (-150.0, 600.0)


DEFAULT_CHECKS = BmdChecks()


@dataclass
class BmdResult:
    """BMD of one mask. ``bmd`` is in ``unit`` (HU, or stored values HU + 1024); ``bmd_hu``
    always in HU. ``warnings`` are doubts about the number, as sentences with their numbers;
    ``notes`` facts a reader should know that do not make it doubtful (the fit is the family's
    normal limit: the BMD is then the mean); ``diagnostics`` the numbers."""

    bmd: float
    bmd_hu: float
    unit: str
    mode_se: float
    n_pixels: int
    fit: JohnsonSuFit
    warnings: list[str] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.warnings

    def to_dict(self) -> dict[str, Any]:
        offset = self.bmd - self.bmd_hu
        fit = self.fit.to_dict()
        fit["loc_in_unit"] = fit["loc"] + offset
        return {"bmd": self.bmd, "bmd_hu": self.bmd_hu, "unit": self.unit,
                "mode_se": self.mode_se, "n_pixels": self.n_pixels, "fit": fit,
                "warnings": list(self.warnings), "notes": list(self.notes),
                "diagnostics": dict(self.diagnostics)}


def default_mask_label(mask: np.ndarray) -> int:
    """The label to measure when none is given: 1 in a binary mask (labels 0 and 1 only, what
    most tools write), else jmedbench's cancellous label."""
    present = set(np.unique(np.asarray(mask)).tolist())
    return 1 if present <= {0, 1} and 1 in present else CANCELLOUS_LABEL


def masked_values(image: np.ndarray, mask: np.ndarray, label: int = CANCELLOUS_LABEL,
                  what: str = "mask") -> np.ndarray:
    """HU values of the pixels where ``mask == label`` (float64), with the input checks."""
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.shape != mask.shape:
        raise UserError(f"{what} shape {mask.shape} does not match the image shape "
                        f"{image.shape}")
    selected = mask == label
    count = int(selected.sum())
    if count == 0:
        present = [int(v) for v in np.unique(mask)[:12]]
        raise EmptyMaskError(f"{what} has no pixel with label {label} (labels present: "
                             f"{present}): nothing to measure")
    values = image[selected].astype(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raise UserError(f"image has {int(bad.sum())} NaN/inf values inside the {what} "
                        f"(label {label})")
    return values


def bmd_from_mask(image: np.ndarray, mask: np.ndarray, label: int = CANCELLOUS_LABEL,
                  stored_values: bool = False, checks: BmdChecks = DEFAULT_CHECKS,
                  bin_width: float | str | None = "auto") -> BmdResult:
    """BMD = mode of the Johnson-Su maximum-likelihood fit to ``image[mask == label]``.

    ``image`` and ``mask`` have equal shapes, (H, W) or (S, H, W) (all slices pooled). The
    image is in HU; ``stored_values`` only changes the reporting unit (HU + 1024). Raises
    :class:`EmptyMaskError` for an empty mask and :class:`UserError` for a shape mismatch.
    """
    values = masked_values(image, mask, label)
    return bmd_from_values(values, stored_values=stored_values, checks=checks,
                           bin_width=bin_width)


def bmd_from_values(values: np.ndarray, stored_values: bool = False,
                    checks: BmdChecks = DEFAULT_CHECKS,
                    bin_width: float | str | None = "auto") -> BmdResult:
    """BMD from pooled HU values (see :func:`bmd_from_mask`). Raises :class:`UserError` for
    values nothing can be fitted to (fewer than 5, all equal, fewer than 3 distinct, NaN/inf)
    and nothing else."""
    values = np.asarray(values, dtype=np.float64).ravel()
    n = values.size
    if n < 5:
        raise UserError(f"only {n} pixels in the mask: at least 5 are needed to fit a "
                        f"Johnson-Su distribution (and {checks.min_pixels} for a stable one)")
    if not np.all(np.isfinite(values)):
        raise UserError(f"{int((~np.isfinite(values)).sum())} of the {n} pixel values are "
                        f"NaN/inf")
    if np.ptp(values) == 0:
        raise UserError(f"all {n} pixels in the mask have the same value {values[0]:g}: no "
                        f"distribution to fit")
    try:
        fit = fit_johnson_su(values, bin_width=bin_width)
    except FitInputError as exc:  # degenerate values (e.g. only two distinct ones)
        raise UserError(f"cannot fit the {n} pixel values: {exc}") from None
    mode = fit.mode
    se = mode_standard_error(fit)
    warnings, diagnostics = diagnose(values, fit, mode, se, checks)
    notes = []
    if fit.limit == "normal":
        notes.append(f"normal limit: the {n} values have lighter tails than any Johnson-Su, so "
                     f"the maximum-likelihood fit is the family's normal limit and the BMD is "
                     f"the values' mean {mode:.1f} HU")
    elif fit.limit == "lognormal":
        notes.append("lognormal edge: the likelihood rises towards the lognormal limit of the "
                     "family; the fit stops on that ridge, where the Johnson-Su is a "
                     "lognormal up to rounding")
    offset = STORED_VALUE_OFFSET if stored_values else 0.0
    unit = "stored value (HU+1024)" if stored_values else "HU"
    return BmdResult(bmd=mode + offset, bmd_hu=mode, unit=unit, mode_se=se, n_pixels=n,
                     fit=fit, warnings=warnings, diagnostics=diagnostics, notes=notes)


# -- precision of the mode ---------------------------------------------------------------------

def _gradient(params: np.ndarray, x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Gradient of sum c log f(x) in (a, b, loc, eta = log scale)."""
    a, b, loc, eta = params
    s = math.exp(eta)
    u = (x - loc) / s
    r = 1.0 / np.sqrt(1.0 + u * u)
    w = np.arcsinh(u)
    z = a + b * w
    q = u / (1.0 + u * u)
    return np.array([
        -(c @ z),
        c.sum() / b - c @ (z * w),
        c @ (q / s + z * b * r / s),
        c @ (-1.0 + q * u + z * b * r * u),
    ])


def mode_standard_error(fit: JohnsonSuFit) -> float:
    """Asymptotic standard error of the fitted mode (HU): the delta method on the inverse
    observed information of (a, b, loc, log scale), the Hessian taken by central differences of
    the analytic gradient. It assumes the pixels are independent draws of a Johnson-Su (CT
    noise is spatially correlated, so it is a lower bound in practice). NaN if the information
    matrix is not positive definite. At the normal limit the mode is the mean: SD / sqrt(n)."""
    x, c = fit.centres, fit.counts
    if fit.limit == "normal":
        return fit.scale / fit.b / math.sqrt(fit.n)
    p0 = np.array([fit.a, fit.b, fit.loc, math.log(fit.scale)])
    steps = 1e-5 * np.maximum(np.abs(p0), 1.0)
    steps[2] = 1e-5 * fit.scale
    hess = np.empty((4, 4))
    for j in range(4):
        e = np.zeros(4)
        e[j] = steps[j]
        hess[:, j] = (_gradient(p0 + e, x, c) - _gradient(p0 - e, x, c)) / (2 * steps[j])
    info = -0.5 * (hess + hess.T)
    try:
        np.linalg.cholesky(info)
    except np.linalg.LinAlgError:
        return float("nan")
    cov = np.linalg.inv(info)
    # mode = loc + s sinh(w*), tanh(w*) + b (a + b w*) = 0 (implicit in a and b)
    a, b, s = fit.a, fit.b, fit.scale
    w = math.asinh((fit.mode - fit.loc) / s)
    denom = 1.0 / math.cosh(w) ** 2 + b * b
    dw_da, dw_db = -b / denom, -(a + 2 * b * w) / denom
    grad = np.array([s * math.cosh(w) * dw_da, s * math.cosh(w) * dw_db, 1.0,
                     s * math.sinh(w)])
    return float(math.sqrt(max(grad @ cov @ grad, 0.0)))


# -- diagnostics -------------------------------------------------------------------------------

def ks_distance(fit: JohnsonSuFit) -> float:
    """Kolmogorov-Smirnov distance between the (binned) pixel values and the fitted CDF.

    A value v on a grid of width h stands for the interval [v - h/2, v + h/2) (integer CT values
    are rounded measurements), so the empirical CDF after v is compared with F(v + h/2) and
    before it with F(v - h/2)."""
    x, c = fit.centres, fit.counts
    half = 0.5 * (fit.bin_width or 0.0)
    cum = np.cumsum(c) / c.sum()
    before = np.concatenate([[0.0], cum[:-1]])
    return float(max(np.max(np.abs(cum - fit.cdf(x + half))),
                     np.max(np.abs(before - fit.cdf(x - half)))))


def secondary_peak(values: np.ndarray) -> dict[str, float] | None:
    """The largest second mode of a kernel density estimate of ``values`` (Silverman's
    bandwidth), if there is one with a real dip before it: its location, the fraction of values
    beyond the dip, its height relative to the main peak and the dip's depth. None when the
    density estimate is unimodal in that sense."""
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    q001, q25, q75, q999 = np.percentile(values, [0.1, 25, 75, 99.9])
    sd = float(values.std())
    spread = min(sd, (q75 - q25) / 1.349) or sd
    if not spread > 0:
        return None
    h = 0.9 * spread * n ** -0.2
    lo, hi = q001 - 3 * h, q999 + 3 * h
    step = max(h / 4, (hi - lo) / 20000)
    edges = np.arange(lo, hi + step, step)
    hist, _ = np.histogram(values, bins=edges)
    sigma = h / step
    half = int(math.ceil(4 * sigma))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    density = np.convolve(hist.astype(np.float64), k / k.sum(), mode="same")
    centres = 0.5 * (edges[:-1] + edges[1:])
    main = int(np.argmax(density))
    peaks = np.flatnonzero((density[1:-1] > density[:-2]) & (density[1:-1] >= density[2:])) + 1
    best = None
    for j in peaks:
        if j == main or density[j] < MIN_PEAK_HEIGHT * density[main]:
            continue
        lo_i, hi_i = sorted((j, main))
        valley_i = lo_i + int(np.argmin(density[lo_i:hi_i + 1]))
        dip = density[valley_i] / density[j]
        if dip > MAX_DIP:
            continue
        cut = centres[valley_i]
        fraction = float(np.mean(values > cut) if j > main else np.mean(values < cut))
        candidate = {"location": float(centres[j]), "fraction": fraction,
                     "height_ratio": float(density[j] / density[main]), "dip": float(dip),
                     "valley": float(cut)}
        if best is None or fraction > best["fraction"]:
            best = candidate
    return best


def diagnose(values: np.ndarray, fit: JohnsonSuFit, mode: float, se: float,
             checks: BmdChecks) -> tuple[list[str], dict[str, Any]]:
    n = values.size
    q25, median, q75 = np.percentile(values, [25, 50, 75])
    robust_sd = (q75 - q25) / 1.349
    ks = ks_distance(fit)
    ks_limit = max(checks.max_ks, 1.63 / math.sqrt(n))
    peak = secondary_peak(values)
    if peak is not None:
        # a heavy-tailed Johnson-Su sample has bumps in its tails too: a second peak counts only
        # when it holds clearly more pixels than the fitted distribution puts beyond the dip
        above = peak["location"] > peak["valley"]
        expected = float(1 - fit.cdf(peak["valley"]) if above else fit.cdf(peak["valley"]))
        peak["expected_fraction"] = expected
        peak["excess_z"] = float((peak["fraction"] - expected)
                                 / math.sqrt(max(expected * (1 - expected), 1e-12) / n))
    distance = mode - median
    diagnostics: dict[str, Any] = {
        "n_pixels": n, "median_hu": float(median), "robust_sd_hu": float(robust_sd),
        "mode_minus_median_hu": float(distance),
        "mode_minus_median_sd": float(distance / robust_sd) if robust_sd > 0 else float("nan"),
        "mode_se_hu": se, "ks_distance": ks, "ks_limit": ks_limit,
        "secondary_peak": peak, "converged": fit.converged,
    }
    warnings: list[str] = []
    if n < checks.min_pixels:
        warnings.append(f"too few pixels: {n} < {checks.min_pixels}; the 4-parameter fit is "
                        f"unstable (mode standard error {se:.1f} HU)")
    elif not se <= checks.max_mode_se:
        warnings.append(f"imprecise: the mode's standard error is {se:.1f} HU "
                        f"(> {checks.max_mode_se:g} HU) with {n} pixels")
    if not fit.converged:
        warnings.append(f"fit did not converge after {fit.iterations} Newton steps: "
                        f"{fit.message}")
    if robust_sd > 0 and abs(distance) > max(checks.mode_median_sd * robust_sd,
                                             checks.mode_median_hu):
        warnings.append(f"possible leaky mask: the mode {mode:.1f} HU is {abs(distance):.1f} HU "
                        f"({abs(distance) / robust_sd:.2f} robust SD) from the median "
                        f"{median:.1f} HU (limit {checks.mode_median_sd:g} SD and "
                        f"{checks.mode_median_hu:g} HU)")
    if (peak is not None and peak["fraction"] >= checks.peak_fraction
            and peak["excess_z"] >= checks.peak_excess_z):
        warnings.append(f"possible leaky mask: bimodal values, a second peak at "
                        f"{peak['location']:.0f} HU; {100 * peak['fraction']:.1f}% of the pixels "
                        f"lie beyond {peak['valley']:.0f} HU where the fit expects "
                        f"{100 * peak['expected_fraction']:.1f}% (main peak {mode:.0f} HU)")
    if ks > ks_limit:
        warnings.append(f"poor fit: Kolmogorov-Smirnov distance {ks:.3f} between the pixels "
                        f"and the fitted Johnson-Su (> {ks_limit:.3f})")
    low, high = checks.plausible_hu
    if not low <= mode <= high:
        hint = (" (it looks like stored values HU+1024: convert the image to HU)"
                if 700 <= mode <= 1700 else "")
        warnings.append(f"implausible BMD {mode:.1f} HU for cancellous bone (expected "
                        f"{low:g} to {high:g} HU){hint}")
    return warnings, diagnostics
