"""The Johnson-Su distribution (scipy's parameterisation): its mode and a fast maximum-likelihood
fit.

z = a + b * asinh((x - loc) / scale) ~ N(0, 1), b > 0, scale > 0. With u = (x - loc) / scale and
w = asinh(u), the log-density is

    log f(x) = log b - log scale - log(2 pi) / 2 - log(1 + u^2) / 2 - (a + b w)^2 / 2.

Mode. Setting the derivative of log f to zero gives tanh(w) + b * (a + b * w) = 0, whose left
side is strictly increasing in w (derivative sech^2(w) + b^2 > 0), so the root is unique, and
since |tanh| < 1 it lies in [-a/b - 1/b^2, -a/b + 1/b^2].

Fit. For fixed (loc, scale) the w_i are fixed and the likelihood in (a, b) is that of a normal
sample: it is maximised by b = 1 / sd(w), a = -mean(w) / sd(w) (sd with divisor n). Putting
these back leaves the *profile* log-likelihood of two parameters (loc, eta = log scale):

    l_p = -n eta - (n / 2) log v(w) - sum log(1 + u_i^2) / 2 - n (log(2 pi) + 1) / 2,

v(w) the variance of the w_i. Its maximum is the full four-parameter maximum. We maximise it
with Newton's method (analytic gradient and Hessian, a trust region and backtracking line
search) from the percentile estimate of Slifker & Shapiro (1980), on standardised values
(median 0, IQR 1) inside a box that keeps every step finite whatever the sample.

The family's boundaries. As b -> inf and scale -> inf with scale / b fixed, Johnson-Su tends to
the normal distribution; a sample with lighter tails than any Johnson-Su (a uniform one, or a
small near-normal one by chance) has its likelihood rising all the way to that limit. The fit
then returns the limit itself (``limit="normal"``: mean and SD of the values, mode = mean),
represented by finite parameters a = 0, b = K, scale = K * SD with K = 10^4, whose density
differs from the normal's by O(1/K^2). The other boundary (scale -> 0, the lognormal limit) is
reported with ``limit="lognormal"`` and the best parameters found on that ridge: inside the box
where every value lies at least 10^3 scales beyond loc (there the density is the lognormal's up
to rounding), else at the box's scale bound. All sums run over distinct values with their
counts (``np.bincount``): CT values are integers, so a 500k-pixel sample has a few thousand
distinct values and the weighted sum *is* the sample log-likelihood, exactly. Non-integer data
are rounded to a grid of ``bin_width`` (see :func:`fit_johnson_su`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm

from jmedbench.errors import UserError

LOG_2PI = math.log(2 * math.pi)


class FitInputError(UserError, ValueError):
    """Values no distribution can be fitted to: fewer than 5, fewer than 3 distinct, or NaN/inf.
    The only error :func:`fit_johnson_su` raises (a ``UserError``, and a ``ValueError`` for
    callers that catch that)."""

# Slifker & Shapiro (1980) use the percentiles at +-z and +-3z; z = 0.524 puts them at about
# the 5th, 30th, 70th and 95th percentiles, robust to a few stray values in the tails.
SLIFKER_SHAPIRO_Z = 0.524
# At most this many bins when rounding non-integer data; beyond it np.unique is used instead.
MAX_BINS = 4_000_000
# Newton runs from at most this many starting points (best first) until one converges to an
# interior optimum; samples with at most EXHAUSTIVE_DISTINCT distinct values (small or heavily
# tied ones, whose likelihood has several local maxima, some on the box's lognormal edge) run
# from all of them, which costs little there, and keep the highest likelihood.
MAX_STARTS = 4
EXHAUSTIVE_DISTINCT = 1000
# The search box on standardised values (median 0, IQR 1): scale within 10^-4 to 10^4 IQRs
# (beyond it the fit is at a boundary of the family for any practical purpose), loc within
# 100 IQRs of the sample's range. exp() and every sum stay finite inside it.
LOG_SCALE_BOUNDS = (math.log(1e-4), math.log(1e4))
LOC_MARGIN = 100.0
# Trust region: a Newton step first moves loc by at most one IQR and scale by at most a factor
# e; the radius doubles (up to MAX_RADIUS) while capped steps are taken whole, so a likelihood
# that rises towards a boundary of the box gets there in a few steps.
MAX_STEP = 1.0
MAX_RADIUS = 64.0
# The normal limit as a Johnson-Su: a = 0, b = K, scale = K * SD (see the module docstring).
NORMAL_LIMIT_B = 1e4
# On the lognormal ridge: where every value lies at least U scales beyond loc, asinh(u) =
# ln(2u) + O(1/(4u^2)) and the Johnson-Su is a shifted lognormal to within b / (4U^2) in z.
# A Newton run on that ridge (flat towards scale -> 0) may stop inside the box, at a point
# whose place along the ridge depends on the CPU's rounding; it is the same boundary.
LOGNORMAL_RIDGE_U = 1e3


def johnson_su_mode(a: float, b: float, loc: float, scale: float) -> float:
    """The mode (argmax of the pdf) of Johnson-Su(a, b, loc, scale).

    >>> round(johnson_su_mode(-1.89, 2.85, 1061.43, 143.84), 2)   # the paper's Figure 6
    1152.54
    """
    if b <= 0 or scale <= 0:
        raise ValueError(f"Johnson-Su needs b > 0 and scale > 0 (got b={b}, scale={scale})")
    centre, half = -a / b, 1.0 / (b * b)
    g = lambda w: math.tanh(w) + b * (a + b * w)  # noqa: E731
    # Search twice the proven bracket: g is then -1 - ... and +1 + ... at its ends, so the
    # signs differ even where rounding makes b * (a + b * w) = -+1 inexact (large |w|).
    w = brentq(g, centre - 2 * half, centre + 2 * half, xtol=1e-14, rtol=1e-15, maxiter=200)
    return loc + scale * math.sinh(w)


def johnson_su_logpdf(x: np.ndarray, a: float, b: float, loc: float, scale: float) -> np.ndarray:
    """log f(x), the same numbers as ``scipy.stats.johnsonsu.logpdf`` (no scipy overhead)."""
    u = (np.asarray(x, dtype=np.float64) - loc) / scale
    z = a + b * np.arcsinh(u)
    return math.log(b) - math.log(scale) - 0.5 * LOG_2PI - 0.5 * np.log1p(u * u) - 0.5 * z * z


def johnson_su_loglik(x: np.ndarray, a: float, b: float, loc: float, scale: float,
                      chunk: int = 8192) -> float:
    """sum(log f(x)) without materialising log f: chunks small enough to stay in cache, in
    place (about twice as fast as ``johnson_su_logpdf(x).sum()`` on 500k values)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    squares = logs = 0.0
    buffer = np.empty(min(chunk, x.size))
    for start in range(0, x.size, chunk):
        u = np.subtract(x[start:start + chunk], loc, out=buffer[: min(chunk, x.size - start)])
        u *= 1.0 / scale
        w = np.arcsinh(u)
        w *= b
        w += a
        squares += float(w @ w)
        np.multiply(u, u, out=u)
        np.log1p(u, out=u)
        logs += float(u.sum())
    constant = math.log(b) - math.log(scale) - 0.5 * LOG_2PI
    return x.size * constant - 0.5 * logs - 0.5 * squares


@dataclass
class JohnsonSuFit:
    """A maximum-likelihood Johnson-Su fit (scipy's parameters a, b, loc, scale).

    loglik: the sample log-likelihood sum(log f(x_i)) of the values as given (comparable with
    ``-scipy.stats.johnsonsu.nnlf``). iterations: Newton steps taken. limit: "normal" when the
    likelihood rose to the family's normal limit and the fit *is* that limit (mean and SD of the
    values; mode = mean), "lognormal" when it ended at the other boundary, None for an interior
    maximum. bin_width: the grid the
    values were rounded to for the optimisation (1.0 on integer data: no rounding at all;
    None: distinct values used as they are). centres/counts: the distinct values and counts
    the likelihood was summed over (for diagnostics and plots).
    """

    a: float
    b: float
    loc: float
    scale: float
    loglik: float
    n: int
    converged: bool
    iterations: int
    message: str
    bin_width: float | None = None
    distinct_values: int = 0
    limit: str | None = None
    centres: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    counts: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]

    @property
    def mode(self) -> float:
        return johnson_su_mode(self.a, self.b, self.loc, self.scale)

    @property
    def params(self) -> tuple[float, float, float, float]:
        """(a, b, loc, scale), in the order of ``scipy.stats.johnsonsu``."""
        return (self.a, self.b, self.loc, self.scale)

    def pdf(self, x: np.ndarray) -> np.ndarray:
        return np.exp(johnson_su_logpdf(x, *self.params))

    def cdf(self, x: np.ndarray) -> np.ndarray:
        u = (np.asarray(x, dtype=np.float64) - self.loc) / self.scale
        return norm.cdf(self.a + self.b * np.arcsinh(u))

    def quantile(self, p: np.ndarray | float) -> np.ndarray:
        z = norm.ppf(p)
        return self.loc + self.scale * np.sinh((z - self.a) / self.b)

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "loc": self.loc, "scale": self.scale,
                "mode": self.mode, "loglik": self.loglik, "n": self.n,
                "converged": self.converged, "iterations": self.iterations,
                "message": self.message, "bin_width": self.bin_width,
                "distinct_values": self.distinct_values, "limit": self.limit}


# -- data reduction ------------------------------------------------------------------------------

def weighted_values(values: np.ndarray, bin_width: float | str | None = "auto"
                    ) -> tuple[np.ndarray, np.ndarray, float | None, bool]:
    """Distinct (rounded) values and their counts: (centres, counts, bin width used, whether
    the centres are the values themselves, i.e. nothing was rounded).

    ``bin_width``: "auto" = exact for integer data (width 1 on the integers: no rounding at
    all), else min(1, IQR / 256) in the values' unit (IQR of a strided subsample of <= 20k
    values); a number = round to that grid; None =
    the distinct values as they are (exact, slower for continuous data).
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if bin_width is None:
        centres, counts = np.unique(x, return_counts=True)
        return centres, counts.astype(np.float64), None, True
    head = x[:1024]  # most float data show it in their first values: skip the full check
    integers = bool(np.array_equal(head, np.rint(head)) and np.array_equal(x, np.rint(x)))
    if bin_width == "auto":
        lo, hi = float(x.min()), float(x.max())
        if integers:
            width = 1.0
        else:
            # the spread only sets the grid: a strided subsample of <= 20k values is enough
            q25, q75 = np.percentile(x[:: max(1, x.size // 20_000)], [25, 75])
            width = min(1.0, float(q75 - q25) / 256.0) or min(1.0, (hi - lo) / 256.0) or 1.0
    else:
        width = float(bin_width)
        if not width > 0:
            raise ValueError(f"bin_width must be > 0, 'auto' or None (got {bin_width!r})")
    exact = integers and width == 1.0
    k = np.rint(x / width)
    kmin, kmax = k.min(), k.max()
    if kmax - kmin + 1 > MAX_BINS:  # far outliers: a dense bincount would be huge
        keys, counts = np.unique(k, return_counts=True)
        return keys * width, counts.astype(np.float64), width, exact
    counts = np.bincount((k - kmin).astype(np.int64))
    occupied = np.flatnonzero(counts)
    return (occupied + kmin) * width, counts[occupied].astype(np.float64), width, exact


# -- the profile likelihood and its derivatives -----------------------------------------------

def _profile(theta: np.ndarray, x: np.ndarray, c: np.ndarray, n: float, order: int = 2):
    """l_p(loc, eta) and, for order >= 1, its gradient and (order 2) Hessian; (-inf, None,
    None) wherever any of them is not finite (the caller then treats the point as infeasible)."""
    with np.errstate(all="ignore"):
        result = _profile_terms(theta, x, c, n, order)
    value, grad, hess = result
    if not math.isfinite(value) or (grad is not None and not np.all(np.isfinite(grad))) or (
            hess is not None and not np.all(np.isfinite(hess))):
        return -math.inf, None, None
    return result


def _profile_terms(theta: np.ndarray, x: np.ndarray, c: np.ndarray, n: float, order: int):
    loc, eta = theta
    s = math.exp(eta)
    u = (x - loc) / s
    uu = u * u
    w = np.arcsinh(u)
    m = (c @ w) / n
    d = w - m
    v = (c @ (d * d)) / n
    if not (v > 0 and np.isfinite(v)):
        return -math.inf, None, None
    value = -n * eta - 0.5 * n * math.log(v) - 0.5 * (c @ np.log1p(uu)) - 0.5 * n * (LOG_2PI + 1)
    if order == 0:
        return value, None, None
    r = 1.0 / np.sqrt(1.0 + uu)          # dw/du
    q = u / (1.0 + uu)                   # d/du of log(1 + u^2) / 2
    # du/dloc = -1/s, du/deta = -u; second: d2u/dloc2 = 0, d2u/dloc deta = 1/s, d2u/deta2 = u
    u_l, u_e = -1.0 / s, -u
    w_l, w_e = r * u_l, r * u_e
    v_l = 2.0 / n * (c @ (d * w_l))
    v_e = 2.0 / n * (c @ (d * w_e))
    grad = np.array([
        -0.5 * n * v_l / v - (c @ q) * u_l,
        -n - 0.5 * n * v_e / v - c @ (q * u_e),
    ])
    if order == 1:
        return value, grad, None
    r_u = -u * r ** 3                    # d2w/du2
    q_u = (1.0 - uu) / (1.0 + uu) ** 2   # d2/du2 of log(1 + u^2) / 2
    w_ll = r_u * u_l * u_l
    w_le = r * (1.0 / s) + r_u * u_l * u_e
    w_ee = r * u + r_u * u_e * u_e
    m_l, m_e = (c @ w_l) / n, (c @ w_e) / n

    def v2(wj, wk, wjk, mj, mk):
        return 2.0 / n * ((c @ (wj * wk)) - n * mj * mk + (c @ (d * wjk)))

    v_ll = v2(w_l, w_l, w_ll, m_l, m_l)
    v_le = v2(w_l, w_e, w_le, m_l, m_e)
    v_ee = v2(w_e, w_e, w_ee, m_e, m_e)
    h_ll = -0.5 * n * (v_ll / v - v_l * v_l / v ** 2) - (c @ q_u) * u_l * u_l
    h_le = -0.5 * n * (v_le / v - v_l * v_e / v ** 2) - (c @ (q_u * u_l * u_e + q / s))
    h_ee = -0.5 * n * (v_ee / v - v_e * v_e / v ** 2) - (c @ (q_u * u_e * u_e + q * u))
    return value, grad, np.array([[h_ll, h_le], [h_le, h_ee]])


def _ab_given(theta: np.ndarray, x: np.ndarray, c: np.ndarray, n: float) -> tuple[float, float]:
    loc, eta = theta
    w = np.arcsinh((x - loc) / math.exp(eta))
    m = (c @ w) / n
    sd = math.sqrt((c @ ((w - m) ** 2)) / n)
    return -m / sd, 1.0 / sd


# -- starting values ---------------------------------------------------------------------------

def slifker_shapiro_start(values_sorted_quantile) -> tuple[float, float, float, float] | None:
    """Johnson-Su parameters from four percentiles (Slifker & Shapiro, Technometrics 22(2),
    1980): x at the normal quantiles -3z, -z, z, 3z. None when the percentiles are not of the
    unbounded (SU) type (m n / p^2 <= 1: lighter tails than the SU family)."""
    z = SLIFKER_SHAPIRO_Z
    x_m3, x_m1, x_p1, x_p3 = values_sorted_quantile(norm.cdf([-3 * z, -z, z, 3 * z]))
    m, n_, p = x_p3 - x_p1, x_m1 - x_m3, x_p1 - x_m1
    if not (m > 0 and n_ > 0 and p > 0):
        return None
    mp, np_ = m / p, n_ / p
    if mp * np_ <= 1.0 + 1e-9:
        return None
    b = 2 * z / math.acosh(0.5 * (mp + np_))
    a = b * math.asinh((np_ - mp) / (2 * math.sqrt(mp * np_ - 1)))
    scale = 2 * p * math.sqrt(mp * np_ - 1) / ((mp + np_ - 2) * math.sqrt(mp + np_ + 2))
    loc = 0.5 * (x_p1 + x_m1) + p * (np_ - mp) / (2 * (mp + np_ - 2))
    if not all(map(math.isfinite, (a, b, loc, scale))) or scale <= 0:
        return None
    return a, b, loc, scale


def _weighted_quantiles(x: np.ndarray, c: np.ndarray):
    cum = np.cumsum(c)
    total = cum[-1]

    def q(probs):
        idx = np.searchsorted(cum, np.asarray(probs) * total, side="left")
        return x[np.clip(idx, 0, len(x) - 1)]
    return q


# -- the fit -----------------------------------------------------------------------------------

@dataclass
class _Box:
    """Bounds of (loc, eta) on standardised values."""

    low: np.ndarray
    high: np.ndarray

    def clip(self, theta: np.ndarray) -> np.ndarray:
        return np.minimum(np.maximum(theta, self.low), self.high)

    def at_bound(self, theta: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """The coordinates held at a bound: on it, with the gradient pushing outwards."""
        return (((theta <= self.low) & (grad < 0)) | ((theta >= self.high) & (grad > 0)))


@dataclass
class _Ascent:
    theta: np.ndarray
    value: float
    converged: bool
    iterations: int
    message: str
    boundary: str | None = None  # "normal" / "lognormal": ended on that side of the box


def _starting_points(x: np.ndarray, c: np.ndarray, n: float, quantile, box: _Box
                     ) -> list[np.ndarray]:
    """(loc, log scale) starts on standardised values, best profile likelihood first: the
    Slifker-Shapiro percentile estimate (when the percentiles are of SU type) and a coarse grid
    over the quantiles and a few scales (it rescues samples near the lognormal or normal
    boundary, where the percentile estimate does not exist)."""
    candidates = []
    start = slifker_shapiro_start(quantile)
    if start is not None:
        candidates.append(box.clip(np.array([start[2], math.log(start[3])])))
    for loc in quantile([0.1, 0.3, 0.5, 0.7, 0.9]):
        for factor in (0.25, 1.0, 4.0):
            candidates.append(np.array([float(loc), math.log(factor)]))
    scored = [(_profile(t, x, c, n, order=0)[0], i) for i, t in enumerate(candidates)]
    scored = [(v, i) for v, i in scored if math.isfinite(v)]
    scored.sort(key=lambda vi: (-vi[0], vi[1]))
    return [candidates[i] for _, i in scored]


def _lognormal_edge_starts(x: np.ndarray, c: np.ndarray, n: float) -> list[np.ndarray]:
    """Starts on the ridge that rises towards the lognormal limit (loc just outside the data,
    a small scale), on both sides: where the likelihood is highest out there (a small sample
    with a far tail), Newton from the interior starts climbs a lower local maximum instead."""
    span = float(x[-1] - x[0])
    candidates = [np.array([float(x[0]) - 0.05 * span, math.log(1e-2)]),
                  np.array([float(x[-1]) + 0.05 * span, math.log(1e-2)])]
    return [t for t in candidates if math.isfinite(_profile(t, x, c, n, order=0)[0])]


def _newton_step(grad: np.ndarray, hess: np.ndarray, free: np.ndarray
                 ) -> tuple[np.ndarray, float | None]:
    """Newton's ascent direction in the free coordinates, and the Newton decrement (predicted
    gain, nats) where the Hessian there is negative definite, else None. Where it is not, its
    eigenvalues are replaced by their absolute values: a direction that gains and keeps Newton's
    scaling."""
    step = np.zeros(2)
    g = grad[free]
    eigvals, eigvecs = np.linalg.eigh(-hess[np.ix_(free, free)])
    if eigvals[0] > 0:
        step[free] = eigvecs @ ((eigvecs.T @ g) / eigvals)
        return step, 0.5 * float(g @ step[free])
    floor = 1e-8 * max(abs(eigvals[-1]), 1e-300)
    step[free] = eigvecs @ ((eigvecs.T @ g) / np.maximum(np.abs(eigvals), floor))
    return step, None


def _newton(theta: np.ndarray, x: np.ndarray, c: np.ndarray, n: float, box: _Box,
            max_iterations: int, tolerance: float) -> _Ascent:
    """Maximise the profile log-likelihood from ``theta`` inside ``box`` (projected Newton: a
    coordinate on a bound with the gradient pushing outwards is held there; steps are capped
    at MAX_STEP and backtracked until they gain)."""
    value, grad, hess = _profile(theta, x, c, n)
    if grad is None:
        return _Ascent(theta, -math.inf, False, 0, "no finite likelihood at the start")
    converged, message, iterations = False, "iteration limit reached", 0
    radius = MAX_STEP
    for iterations in range(1, max_iterations + 1):
        free = ~box.at_bound(theta, grad)
        if not free.any():
            converged, message = True, "converged on a corner of the search box"
            iterations -= 1
            break
        step, decrement = _newton_step(grad, hess, free)
        if decrement is not None and decrement < tolerance:
            converged, message = True, "converged (Newton decrement below tolerance)"
            iterations -= 1
            break
        longest = float(np.max(np.abs(step)))
        if not math.isfinite(longest) or longest == 0.0:
            message = "stopped: no finite ascent direction"
            break
        capped = longest > radius
        if capped:
            step *= radius / longest
        t = 1.0  # backtracking: the first step length along the direction that gains
        for _ in range(60):
            trial = box.clip(theta + t * step)
            # the value alone first: most trials are rejected, and the derivatives cost twice
            # the value (the order-2 call computes the same value, bit for bit)
            if _profile(trial, x, c, n, order=0)[0] >= value:
                trial_value, trial_grad, trial_hess = _profile(trial, x, c, n)
                if trial_grad is not None and trial_value >= value:
                    break
            t *= 0.5
        else:
            trial = None  # no trial gained
        if trial is not None and np.array_equal(trial, theta):
            # the gaining "step" did not move theta. With a step capped at a radius above
            # MAX_STEP, the next iteration tries the same direction capped at MAX_STEP;
            # otherwise it would repeat this one exactly up to the iteration limit, and ends
            # as that would (not converged: on a flat ridge, a boundary start may be better)
            if longest > MAX_STEP and radius > MAX_STEP:
                radius = MAX_STEP
                continue
            message = ("stopped: the step no longer moves the point (more iterations would "
                       "repeat it)")
            break
        if trial is None:
            # no gain possible in floating point: at the optimum when Newton said so
            converged = decrement is not None and decrement < 1e3 * tolerance
            message = ("converged (no further gain in floating point)" if converged else
                       f"stopped: no ascent along the Newton direction (gradient "
                       f"{grad[0]:.3g}, {grad[1]:.3g})")
            break
        radius = min(2.0 * radius, MAX_RADIUS) if capped and t == 1.0 else MAX_STEP
        theta, value, grad, hess = trial, trial_value, trial_grad, trial_hess
    boundary = None
    if theta[1] >= box.high[1] and grad[1] > 0:
        boundary = "normal"
    elif (theta[1] <= box.low[1] and grad[1] < 0) or _on_lognormal_ridge(theta, x):
        boundary = "lognormal"
    return _Ascent(theta, value, converged, iterations, message, boundary)


def _on_lognormal_ridge(theta: np.ndarray, x: np.ndarray) -> bool:
    """loc outside the values and every value at least LOGNORMAL_RIDGE_U scales from it: the
    density there is the lognormal limit's up to rounding (see LOGNORMAL_RIDGE_U)."""
    loc, scale = float(theta[0]), math.exp(float(theta[1]))
    nearest = min(abs(float(x[0]) - loc), abs(float(x[-1]) - loc))
    outside = loc < float(x[0]) or loc > float(x[-1])
    return outside and nearest >= LOGNORMAL_RIDGE_U * scale


def _normal_limit(x: np.ndarray, c: np.ndarray, n: float) -> tuple[float, float, float]:
    """(mean, SD with divisor n, log-likelihood) of the normal fit to the weighted values."""
    mean = float(c @ x) / n
    var = float(c @ ((x - mean) ** 2)) / n
    return mean, math.sqrt(var), -0.5 * n * (LOG_2PI + math.log(var) + 1.0)


def fit_johnson_su(values: np.ndarray, *, bin_width: float | str | None = "auto",
                   max_iterations: int = 100, tolerance: float = 1e-9) -> JohnsonSuFit:
    """Maximum-likelihood Johnson-Su fit of ``values`` (any shape).

    The likelihood is summed over distinct values with their counts. For integer data (CT
    values; ``bin_width="auto"``) this is exactly the sample log-likelihood that
    ``scipy.stats.johnsonsu.fit`` maximises. Non-integer data are rounded to a grid of width
    ``bin_width`` (auto: min(1, IQR/256)) and each value is scored at its grid point while
    optimising. Rounding to width h adds a uniform error of variance h^2/12 to each value, so
    the optimised likelihood differs from the exact one by O(h^2 / scale^2) per value and the
    maximiser moves by O(h^2 / scale) (for CT at h <= 1 HU, thousandths of a HU; measured in
    benchmarks/bench_johnsonsu.py). The reported ``loglik`` is always that of the values as
    given. ``bin_width=None`` optimises on the exact values (slower for continuous data).

    Converged means the Newton decrement g' H^-1 g / 2 (the predicted remaining gain in
    log-likelihood) fell below ``tolerance`` nats with a negative definite Hessian. Where the
    likelihood rises to the normal limit of the family (lighter tails than any Johnson-Su),
    the result is that limit: ``limit="normal"``, converged, mode = mean (see the module
    docstring). Raises :class:`FitInputError` (fewer than 5 values, fewer than 3 distinct
    ones, NaN/inf) and nothing else, whatever the sample.
    """
    x_all = np.asarray(values, dtype=np.float64)
    if x_all.size < 5:
        raise FitInputError(f"need at least 5 values to fit a Johnson-Su distribution "
                            f"(got {x_all.size})")
    if not np.all(np.isfinite(x_all)):
        raise FitInputError(f"values contain {int((~np.isfinite(x_all)).sum())} NaN/inf")
    x, c, width, exact_bins = weighted_values(x_all, bin_width)
    n = float(c.sum())
    if len(x) < 3:
        raise FitInputError(f"need at least 3 distinct values to fit a Johnson-Su "
                            f"distribution (got {len(x)}: {x.tolist()})")
    # Standardise (median 0, IQR 1; range or SD where most values tie) so that the search box
    # and the step cap mean the same for every sample.
    quantile = _weighted_quantiles(x, c)
    q25, centre, q75 = (float(v) for v in quantile([0.25, 0.5, 0.75]))
    spread = (q75 - q25) or (float(x[-1] - x[0]) / 4.0)
    y = (x - centre) / spread
    box = _Box(low=np.array([float(y[0]) - LOC_MARGIN, LOG_SCALE_BOUNDS[0]]),
               high=np.array([float(y[-1]) + LOC_MARGIN, LOG_SCALE_BOUNDS[1]]))
    mean_y, sd_y, normal_value = _normal_limit(y, c, n)
    # Newton from the best start; should it end at a boundary of the family or stall, try the
    # next-best starts. The highest likelihood wins (a converged one over an unconverged one).
    best: _Ascent | None = None
    iterations = 0
    exhaustive = len(x) <= EXHAUSTIVE_DISTINCT
    starts = _starting_points(y, c, n, _weighted_quantiles(y, c), box)[:MAX_STARTS]
    if exhaustive:
        starts += _lognormal_edge_starts(y, c, n)
    for theta0 in starts:
        ascent = _newton(theta0, y, c, n, box, max_iterations, tolerance)
        iterations += ascent.iterations
        if best is None or (ascent.converged, ascent.value) > (best.converged, best.value):
            best = ascent
        if ascent.converged and ascent.boundary is None and not exhaustive:
            break
    # The normal limit belongs to the family's closure: it is the answer when no interior
    # optimum beats it (the likelihood rose towards it, or the search ended short of it).
    if best is None or best.boundary == "normal" or best.value < normal_value:
        a, b = 0.0, NORMAL_LIMIT_B
        loc, scale = centre + spread * mean_y, spread * sd_y * NORMAL_LIMIT_B
        converged, limit = True, "normal"
        message = ("normal limit: the values have lighter tails than any Johnson-Su, the "
                   "likelihood is highest at the family's normal limit (mode = mean)")
    else:
        a, b = _ab_given(best.theta, y, c, n)
        loc, scale = centre + spread * float(best.theta[0]), spread * math.exp(best.theta[1])
        converged, message, limit = best.converged, best.message, best.boundary
        if limit == "lognormal":
            message = ("lognormal edge: the likelihood rises as scale shrinks towards the "
                       "lognormal limit of the family; the fit stops on that ridge, at scale = "
                       f"{math.exp(best.theta[1]):.2g} IQR ("
                       + best.message + ")")
    if exact_bins:
        loglik = float(c @ johnson_su_logpdf(x, a, b, loc, scale))
    else:  # report the likelihood of the values as given, not of their rounded copies
        loglik = johnson_su_loglik(x_all, a, b, loc, scale)
    return JohnsonSuFit(a=float(a), b=float(b), loc=float(loc), scale=float(scale),
                        loglik=loglik, n=int(n), converged=bool(converged),
                        iterations=int(iterations), message=message, bin_width=width,
                        distinct_values=int(len(x)), limit=limit, centres=x, counts=c)
