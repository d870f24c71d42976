"""The Johnson-Su distribution (scipy's parameterisation) and its mode.

z = a + b * asinh((x - loc) / scale) ~ N(0, 1). With w = asinh((x - loc) / scale), the density
in x is proportional to exp(-z^2 / 2) / cosh(w); setting its derivative to zero gives

    tanh(w) + b * (a + b * w) = 0,

whose left side is strictly increasing in w (derivative sech^2(w) + b^2 > 0), so the root is
unique, and since |tanh| < 1 it lies in [-a/b - 1/b^2, -a/b + 1/b^2].
"""

from __future__ import annotations

import math

from scipy.optimize import brentq


def johnson_su_mode(a: float, b: float, loc: float, scale: float) -> float:
    """The mode (argmax of the pdf) of Johnson-Su(a, b, loc, scale).

    >>> round(johnson_su_mode(-1.89, 2.85, 1061.43, 143.84), 2)   # the paper's Figure 6
    1152.54
    """
    if b <= 0 or scale <= 0:
        raise ValueError(f"Johnson-Su needs b > 0 and scale > 0 (got b={b}, scale={scale})")
    centre, half = -a / b, 1.0 / (b * b)
    g = lambda w: math.tanh(w) + b * (a + b * w)  # noqa: E731
    lo, hi = centre - half, centre + half
    if g(lo) == 0:
        w = lo
    elif g(hi) == 0:
        w = hi
    else:
        w = brentq(g, lo, hi, xtol=1e-14, rtol=1e-15, maxiter=200)
    return loc + scale * math.sinh(w)
