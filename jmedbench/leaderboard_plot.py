"""The leaderboard's figure: does a better segmentation give a better clinical measurement?

Two panels over the leaderboard entries: clean Dice against BMD error (the source paper's
question), and clean against cross-site Dice (robustness to a second hospital). One marker per
strategy, every model labelled. matplotlib with the Agg backend: no display needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _mean(entry: dict[str, Any], key: str) -> float | None:
    value = entry["metrics"].get(key, {}).get("mean")
    return None if value is None or value != value else float(value)  # NaN -> None


def plot_leaderboard(entries: list[dict[str, Any]], path: str | Path) -> Path | None:
    """Write the figure to ``path``; ``None`` (nothing written) when no entry has a Dice."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plotted = [e for e in entries if _mean(e, "dice") is not None]
    if not plotted:
        return None
    strategies = sorted({e["strategy"] for e in plotted})
    fig, axes = plt.subplots(1, 2, figsize=(15, 7))
    panels = [("bmd_mae", "BMD MAE (HU), lower is better"),
              ("shift_dice", "cross-site Dice, higher is better")]
    for ax, (key, label) in zip(axes, panels):
        for i, strategy in enumerate(strategies):
            points = [(e["model"], _mean(e, "dice"), _mean(e, key)) for e in plotted
                      if e["strategy"] == strategy and _mean(e, key) is not None]
            if not points:
                continue
            ax.scatter([p[1] for p in points], [p[2] for p in points],
                       marker=MARKERS[i % len(MARKERS)], s=36, alpha=0.8, label=strategy)
            for model, x, y in points:
                ax.annotate(model, (x, y), fontsize=6, alpha=0.7, xytext=(3, 2),
                            textcoords="offset points")
        ax.set_xlabel("clean Dice, higher is better")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(title="strategy", fontsize=8)
    if any(_mean(e, "bmd_mae") is not None for e in plotted):
        axes[0].set_yscale("symlog", linthresh=1.0)
    else:
        axes[0].text(0.5, 0.5, "no BMD metric in these runs", ha="center",
                     transform=axes[0].transAxes)
    profiles = ", ".join(sorted({e["profile"] for e in plotted}))
    datasets = ", ".join(sorted({e["dataset"] for e in plotted}))
    fig.suptitle(f"{len(plotted)} entries, {len({e['model'] for e in plotted})} models "
                 f"(dataset {datasets}, profile {profiles})")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
