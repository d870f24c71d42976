"""Leaderboards, generated from the results store and never edited by hand (as RobustBench):
one JSON file per entry (model x strategy x dataset x profile x backend, aggregated over seeds,
:mod:`~jmedbench.leaderboard.aggregate`), then Markdown, CSV and a self-contained sortable HTML
page (:mod:`~jmedbench.leaderboard.render`), a figure (:mod:`~jmedbench.leaderboard.plot`) and
a README (:mod:`~jmedbench.leaderboard.readme`). :func:`build` writes them all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jmedbench.columns import robustness_columns, table_columns
from jmedbench.leaderboard.aggregate import entries_from_runs, entry_filename
from jmedbench.leaderboard.plot import plot_leaderboard
from jmedbench.leaderboard.readme import render_readme
from jmedbench.leaderboard.render import render_csv, render_html, render_markdown
from jmedbench.registry import Registry, get_registry
from jmedbench.store import Store, clean_nan


def build(store: Store, out_dir: Path, command: str, registry: Registry | None = None
          ) -> dict[str, Any]:
    """Write entries/*.json, leaderboard.{md,csv,json}, index.html, README.md and, when any
    entry has the headline metric, leaderboard.png; return a summary. The columns, the
    headline and the reference strategy come from the installed plugins (``registry``)."""
    columns_from = registry or get_registry()
    headline = columns_from.flagged("metrics", "headline")
    shown = table_columns(columns_from, "leaderboard")
    # the headline first: the tables rank by it and show its interval
    columns = ([c for c in shown if c.key == headline.name]
               + [c for c in shown if c.key != headline.name])
    reference = columns_from.flagged("strategies", "reference").name
    out_dir = Path(out_dir)
    entries_dir = out_dir / "entries"
    entries_dir.mkdir(parents=True, exist_ok=True)
    completed = store.runs(kind="run", status="completed")
    entries = entries_from_runs(completed, registry)
    wanted = set()
    for entry in entries:
        name = entry_filename(entry)
        wanted.add(name)
        (entries_dir / name).write_text(json.dumps(clean_nan(entry), indent=2) + "\n")
    for stale in entries_dir.glob("*.json"):  # generated files only: entries no longer in the store
        if stale.name not in wanted:
            stale.unlink()
    (out_dir / "leaderboard.md").write_text(render_markdown(entries, columns, command))
    (out_dir / "leaderboard.csv").write_text(render_csv(entries, columns))
    (out_dir / "leaderboard.json").write_text(json.dumps(clean_nan(entries), indent=2) + "\n")
    (out_dir / "index.html").write_text(render_html(entries, columns, command))
    run_ids = {run_id for entry in entries for run_id in entry["runs"]}
    runs = [r for r in completed if r["run_id"] in run_ids]
    all_models = registry.names("models") if registry is not None else None
    (out_dir / "README.md").write_text(render_readme(
        entries, runs, command, str(store.path), all_models, reference,
        table_columns(columns_from, "compare"), robustness_columns(headline)[0].key))
    figure = out_dir / "leaderboard.png"
    if not plot_leaderboard(entries, columns[0], table_columns(columns_from, "plot"), figure) \
            and figure.exists():
        figure.unlink()  # generated earlier from runs no longer in the store
    return {"entries": len(entries), "models": len({e["model"] for e in entries}),
            "out": str(out_dir), "figure": str(figure) if figure.exists() else None}
