"""The ranking figures of one comparison (dataset x profile), as challengeR draws them:

- the **blob plot**: per score a panel, entries along x in the order of their full rank; at
  each rank an entry took in the bootstrap a dot whose area is the fraction of resamples with
  that rank, a black line over its 95 % rank interval and a cross at its full rank;
- the **significance map**: per score a panel, entries in full-rank order on both axes; a
  filled cell (row i, column j) means entry i is significantly better than entry j (one-sided
  paired Wilcoxon signed-rank, Holm-adjusted p < 0.05).

matplotlib with the Agg backend.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from jmedbench.leaderboard.ranking import entry_label


def _grid(count: int, entries: int) -> tuple[int, int]:
    """Rows and columns of panels: two columns, one when there are many entries."""
    cols = 1 if count == 1 or entries > 30 else 2
    return math.ceil(count / cols), cols


def _labels(comparison: dict[str, Any], order: list[str], entries: dict[str, dict]) -> list[str]:
    return [entry_label(entries[i]) if i in entries else i for i in order]


def _leave_room_for_title(fig, lines: int) -> None:
    """Lay the panels out below the figure's title (tight_layout alone let a tall figure's
    title run into its first panel's)."""
    top_inches = 0.3 + 0.25 * lines
    fig.tight_layout(rect=(0, 0, 1, 1 - top_inches / fig.get_figheight()))


def plot_blob(comparison: dict[str, Any], entries: dict[str, dict], path: str | Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = list(comparison["scores"].values())
    k = len(comparison["entries"])
    rows, cols = _grid(len(scores), k)
    width = max(6.0, 0.22 * k + 2.5)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, 4.2 * rows), squeeze=False)
    for ax, result in zip(axes.flat, scores):
        order = result["order"]
        for x, i in enumerate(order, 1):
            numbers = result["entries"][i]
            ranks = [int(r) for r in numbers["rank_frequencies"]]
            freqs = list(numbers["rank_frequencies"].values())
            ax.scatter([x] * len(ranks), ranks, s=[300 * f for f in freqs], color="tab:blue",
                       alpha=0.55, linewidths=0)
            low, high = numbers["rank_ci95"]
            ax.plot([x, x], [low, high], color="black", lw=1.2)
            ax.plot([x], [numbers["rank"]], marker="x", color="black", ms=5)
        ax.set_xticks(range(1, len(order) + 1))
        ax.set_xticklabels(_labels(comparison, order, entries), rotation=90,
                           fontsize=7 if k > 30 else 8)
        ax.set_ylim(len(order) + 0.7, 0.3)
        ax.set_ylabel("rank (1 = best)")
        tau = result["kendall_tau"]["mean"]
        ax.set_title(f"{result['title']} ({'higher' if result['higher_is_better'] else 'lower'}"
                     f" is better); {result['subjects']} subjects, Kendall's tau "
                     f"{'n/a' if tau is None else f'{tau:.3f}'}", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(scores):]:
        ax.axis("off")
    fig.suptitle(f"Bootstrap rank distributions ({comparison['dataset']}, "
                 f"{comparison['profile']}): dot area = share of "
                 f"{scores[0]['resamples']} resamples, line = 95 % rank interval, "
                 "x = full ranking")
    _leave_room_for_title(fig, lines=1)
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_significance(comparison: dict[str, Any], entries: dict[str, dict], path: str | Path
                      ) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import ListedColormap

    scores = list(comparison["scores"].values())
    k = len(comparison["entries"])
    rows, cols = _grid(len(scores), 0)
    side = max(4.5, 0.16 * k + 2.5)
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols, side * rows), squeeze=False)
    for ax, result in zip(axes.flat, scores):
        labels = _labels(comparison, result["order"], entries)
        matrix = np.array(result["significant"], dtype=float).reshape(len(labels), len(labels))
        np.fill_diagonal(matrix, np.nan)
        ax.imshow(matrix, cmap=ListedColormap(["#e8e8f0", "#d9534f"]), vmin=0, vmax=1)
        ax.set_xticks(range(len(labels)))
        ax.set_yticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=90, fontsize=6 if k > 30 else 8)
        ax.set_yticklabels(labels, fontsize=6 if k > 30 else 8)
        ax.set_xlabel("... than this entry")
        ax.set_ylabel("this entry is significantly better ...")
        ax.set_title(f"{result['title']}: {int(np.nansum(matrix))} significant pairs",
                     fontsize=9)
    for ax in list(axes.flat)[len(scores):]:
        ax.axis("off")
    fig.suptitle(f"Significance maps ({comparison['dataset']}, {comparison['profile']})\nred: "
                 "the row's entry is better than the column's, one-sided paired Wilcoxon "
                 "signed-rank, Holm-adjusted p < 0.05")
    _leave_room_for_title(fig, lines=2)
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
