"""Figures of the density analysis (matplotlib, Agg backend: no display needed).

- :func:`plot_density`: the paper's Figure 6: histogram of the masked values, the fitted
  Johnson-Su pdf and its mode.
- :func:`plot_cohort`: the paper's Figure 7: BMD against age per sex with the fitted lines,
  one panel per statistics x site.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from jmedbench.density.bmd import BmdResult
from jmedbench.density.cohort import CohortResult
from jmedbench.errors import UserError

SEX_COLOURS = {"F": "#c0392b", "M": "#2e6da4"}


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: str | Path) -> Path:
    plt = _pyplot()
    path = Path(path)
    try:
        fig.savefig(path, dpi=120)
    except (OSError, ValueError) as exc:  # ValueError: an extension matplotlib cannot write
        raise UserError(f"--plot {path}: cannot write the figure "
                        f"({getattr(exc, 'strerror', None) or exc})") from None
    finally:
        plt.close(fig)
    return path


def plot_density(result: BmdResult, path: str | Path, title: str = "") -> Path:
    """Histogram of the masked values (1-unit bins for integer data), the fitted pdf scaled to
    counts, and the mode, in the result's reporting unit (HU or stored values)."""
    plt = _pyplot()
    fit = result.fit
    offset = result.bmd - result.bmd_hu
    x, c = fit.centres, fit.counts
    lo, hi = (float(v) for v in fit.quantile([0.0005, 0.9995]))
    lo, hi = min(lo, result.bmd_hu - 1), max(hi, result.bmd_hu + 1)
    keep = (x >= lo) & (x <= hi)
    grid_step = fit.bin_width or 0.0
    width = (hi - lo) / 150  # about 150 bars, each a whole number of the data's grid steps
    if grid_step:
        width = grid_step * max(1.0, math.ceil(width / grid_step))
        lo = (math.floor(lo / grid_step) - 0.5) * grid_step
    edges = np.arange(lo, hi + width, width)
    hist, edges = np.histogram(x[keep], bins=edges, weights=c[keep])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.bar(edges[:-1] + offset, hist, width=width, align="edge", color="0.75",
           edgecolor="0.6", linewidth=0.3, label=f"pixels (n = {result.n_pixels})")
    grid = np.linspace(lo, hi, 600)
    ax.plot(grid + offset, fit.pdf(grid) * fit.n * width, color="#c0392b", lw=2,
            label=f"Johnson-Su a={fit.a:.2f} b={fit.b:.2f} loc={fit.loc + offset:.1f} "
                  f"scale={fit.scale:.1f}")
    ax.axvline(result.bmd, color="#2e6da4", ls="--", lw=1.5,
               label=f"mode = {result.bmd:.2f} ± {result.mode_se:.2f} (SE)")
    ax.set_xlabel(f"CT value ({result.unit})")
    ax.set_ylabel("pixels")
    ax.legend(fontsize=8)
    ax.set_title(title or "BMD: mode of the Johnson-Su fit", fontsize=10)
    if result.warnings:
        ax.text(0.01, 0.99, "\n".join(f"! {w[:90]}" for w in result.warnings), fontsize=6,
                color="#a04000", va="top", transform=ax.transAxes)
    fig.tight_layout()
    return _save(fig, path)


def plot_cohort(result: CohortResult, path: str | Path, title: str = "") -> Path:
    """BMD against age with the fitted lines, one panel per statistics x site."""
    plt = _pyplot()
    kinds = [s for s in ("personal", "group") if any(g.statistics == s for g in result.groups)]
    sites = sorted({g.site for g in result.groups})
    fig, axes = plt.subplots(len(kinds), len(sites), squeeze=False,
                             figsize=(5.2 * len(sites), 4.0 * len(kinds)))
    for i, kind in enumerate(kinds):
        for j, site in enumerate(sites):
            ax = axes[i][j]
            for g in result.groups:
                if g.statistics != kind or g.site != site:
                    continue
                colour = SEX_COLOURS.get(g.sex, "0.3")
                ax.scatter(g.ages, g.bmds, s=14 if kind == "personal" else 28, color=colour,
                           alpha=0.7, marker="o" if kind == "personal" else "s")
                if math.isfinite(g.k):
                    xs = np.array([min(g.ages), max(g.ages)])
                    ax.plot(xs, -g.k * xs + g.Z, color=colour, lw=1.8,
                            label=f"{g.sex}: D = -{g.k:.2f} A + {g.Z:.1f}  (R² {g.r2:.2f}, "
                                  f"n {g.n})")
            ax.set_title(f"site {site}, {kind} statistics", fontsize=10)
            ax.set_xlabel("age (years)")
            ax.set_ylabel(f"BMD ({result.unit})" if result.unit else "BMD")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)
