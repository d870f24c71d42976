"""The leaderboard's figure: does a better segmentation give a better clinical measurement?

One panel per column the metric plugins mark for the ``plot`` table, each against the headline
metric: with the first-party metrics, clean Dice against BMD error (the source paper's
question) and against cross-site Dice (robustness to a second hospital). One marker per
strategy, every model labelled. matplotlib with the Agg backend: no display needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jmedbench.leaderboard.aggregate import entry_mean
from jmedbench.specs import Column

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _better(column: Column) -> str:
    return "higher is better" if column.higher_is_better else "lower is better"


def _label(column: Column) -> str:
    return f"{column.description or column.title}, {_better(column)}"


def plot_leaderboard(entries: list[dict[str, Any]], headline: Column, panels: list[Column],
                     path: str | Path) -> Path | None:
    """Write the figure to ``path``; ``None`` (nothing written) when no entry has the
    headline metric."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plotted = [e for e in entries if entry_mean(e, headline.key) is not None]
    if not plotted:
        return None
    strategies = sorted({e["strategy"] for e in plotted})
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 7), squeeze=False)
    axes = axes[0]
    for ax, panel in zip(axes, panels):
        key = panel.key
        for i, strategy in enumerate(strategies):
            points = [(e["model"], entry_mean(e, headline.key), entry_mean(e, key)) for e in plotted
                      if e["strategy"] == strategy and entry_mean(e, key) is not None]
            if not points:
                continue
            ax.scatter([p[1] for p in points], [p[2] for p in points],
                       marker=MARKERS[i % len(MARKERS)], s=36, alpha=0.8, label=strategy)
            for model, x, y in points:
                ax.annotate(model, (x, y), fontsize=6, alpha=0.7, xytext=(3, 2),
                            textcoords="offset points")
        ax.set_xlabel(_label(headline))
        ax.set_ylabel(_label(panel))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(title="strategy", fontsize=8)
    for ax, panel in zip(axes, panels):
        if not any(entry_mean(e, panel.key) is not None for e in plotted):
            ax.text(0.5, 0.5, f"no {panel.title} in these runs", ha="center",
                    transform=ax.transAxes)
        elif not panel.higher_is_better:  # errors span decades across models
            ax.set_yscale("symlog", linthresh=1.0)
    profiles = ", ".join(sorted({e["profile"] for e in plotted}))
    datasets = ", ".join(sorted({e["dataset"] for e in plotted}))
    fig.suptitle(f"{len(plotted)} entries, {len({e['model'] for e in plotted})} models "
                 f"(dataset {datasets}, profile {profiles})")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
