"""Leaderboards, generated from the results store and never edited by hand (as RobustBench):
one JSON file per entry (model x strategy x dataset x profile x backend, aggregated over seeds,
:mod:`~jmedbench.leaderboard.aggregate`, with its per-subject scores,
:mod:`~jmedbench.leaderboard.subject_scores`), rankings with bootstrap and rank intervals and
paired tests over the test subjects (:mod:`~jmedbench.leaderboard.ranking`, figures in
:mod:`~jmedbench.leaderboard.rankplot`), the clinical endpoint
(:mod:`~jmedbench.leaderboard.clinical`), then Markdown, CSV and a self-contained HTML page
(:mod:`~jmedbench.leaderboard.render`), the corruption x severity CSV
(:mod:`~jmedbench.leaderboard.corruptions`), a figure (:mod:`~jmedbench.leaderboard.plot`) and
a README (:mod:`~jmedbench.leaderboard.readme`). :func:`build` writes them all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from jmedbench.columns import robustness_columns, table_columns
from jmedbench.leaderboard.aggregate import (entries_from_runs, entry_filename, entry_id,
                                             file_stem)
from jmedbench.leaderboard.clinical import entry_endpoint
from jmedbench.leaderboard.corruptions import corruption_table, render_corruptions_csv
from jmedbench.leaderboard.plot import plot_leaderboard
from jmedbench.leaderboard.ranking import N_RESAMPLES, attach_rankings
from jmedbench.leaderboard.ranking import comparisons as rank_comparisons
from jmedbench.leaderboard.rankplot import plot_blob, plot_significance
from jmedbench.leaderboard.readme import render_readme
from jmedbench.leaderboard.render import (render_csv, render_html, render_markdown,
                                          render_ranking_markdown)
from jmedbench.leaderboard.subject_scores import entry_subject_rows, ordered_scores
from jmedbench.registry import Registry, get_registry
from jmedbench.store import Store, clean_nan


def entry_json(entry: dict[str, Any], subjects: list[dict[str, Any]]) -> str:
    """The entry's file: its numbers indented, then its per-subject scores one subject row a
    line, numbers to 6 significant digits (3 seeds x 80 subjects stay near 100 kB)."""
    text = json.dumps(clean_nan({**entry, "subjects": []}), indent=2)
    if not subjects:
        return text + "\n"
    lines = ",\n".join("    " + json.dumps(_rounded(clean_nan(r)), separators=(",", ":"))
                        for r in subjects)
    head, tail = text.rsplit('"subjects": []', 1)
    return head + '"subjects": [\n' + lines + "\n  ]" + tail + "\n"


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return float(f"{value:.6g}") if isinstance(value, float) else value


def build(store: Store, out_dir: Path, command: str, registry: Registry | None = None,
          progress: Callable[[str, int, int], None] | None = None,
          n_resamples: int = N_RESAMPLES) -> dict[str, Any]:
    """Write entries/*.json, leaderboard.{md,csv,json}, ranking.{md,json}, robustness.csv,
    index.html, README.md, the blob plot and significance map of every comparison that has
    per-subject scores and, when any entry has the headline metric, leaderboard.png; return a
    summary. The columns, the headline and the reference strategy come from the installed
    plugins (``registry``). ``progress(stage, done, total)`` is called as the subject rows are
    read and the scores ranked; ``n_resamples``: bootstrap resamples (the published tables use
    the default, 1,000)."""
    columns_from = registry or get_registry()
    headline = columns_from.flagged("metrics", "headline")
    shown = table_columns(columns_from, "leaderboard")
    # the headline first: the tables rank by it and show its interval
    columns = ([c for c in shown if c.key == headline.name]
               + [c for c in shown if c.key != headline.name])
    scores = ordered_scores(headline.name)
    reference = columns_from.flagged("strategies", "reference").name
    out_dir = Path(out_dir)
    entries_dir = out_dir / "entries"
    entries_dir.mkdir(parents=True, exist_ok=True)
    completed = store.runs(kind="run", status="completed")
    entries = entries_from_runs(completed, registry)
    rows = {}
    for done, entry in enumerate(entries, 1):
        rows[entry_id(entry)] = entry_subject_rows(store, entry)
        if progress is not None:
            progress("subject rows", done, len(entries))
    counter = {"done": 0}
    total = len(scores) * len({(e["dataset"], e["profile"]) for e in entries
                               if rows[entry_id(e)]})

    def ranked(note: str) -> None:
        counter["done"] += 1
        if progress is not None:
            progress("rankings", counter["done"], total)

    comparisons = rank_comparisons(entries, rows, scores, n_resamples, progress=ranked)
    attach_rankings(entries, comparisons)
    for entry in entries:
        entry["clinical"] = entry_endpoint(rows[entry_id(entry)])
    wanted = set()
    for entry in entries:
        name = entry_filename(entry)
        wanted.add(name)
        subjects = [{k: v for k, v in r.items() if k != "run_id"} for r in rows[entry_id(entry)]]
        (entries_dir / name).write_text(entry_json(entry, subjects))
    for stale in entries_dir.glob("*.json"):  # generated files only: entries no longer in the store
        if stale.name not in wanted:
            stale.unlink()
    (out_dir / "leaderboard.md").write_text(render_markdown(entries, columns, command, scores))
    (out_dir / "leaderboard.csv").write_text(render_csv(entries, columns, scores))
    (out_dir / "leaderboard.json").write_text(json.dumps(clean_nan(entries), indent=2) + "\n")
    (out_dir / "ranking.json").write_text(json.dumps(clean_nan(comparisons), indent=2) + "\n")
    (out_dir / "ranking.md").write_text(render_ranking_markdown(entries, comparisons, scores,
                                                                command))
    by_run = {r["run_id"]: r for r in completed}
    header, corruption_rows = corruption_table(entries, by_run, [c.key for c in columns])
    (out_dir / "robustness.csv").write_text(render_corruptions_csv(header, corruption_rows))
    (out_dir / "index.html").write_text(render_html(entries, columns, command, scores,
                                                    comparisons))
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
    by_id = {entry_id(e): e for e in entries}
    ranking_figures = []
    for comparison in comparisons:
        if not comparison["scores"]:
            continue
        name = file_stem(comparison["dataset"], comparison["profile"])
        ranking_figures += [plot_blob(comparison, by_id, out_dir / f"blob-{name}.png"),
                            plot_significance(comparison, by_id,
                                              out_dir / f"significance-{name}.png")]
    for stale in [*out_dir.glob("blob-*.png"), *out_dir.glob("significance-*.png")]:
        if stale not in ranking_figures:
            stale.unlink()
    return {"entries": len(entries), "models": len({e["model"] for e in entries}),
            "out": str(out_dir), "figure": str(figure) if figure.exists() else None,
            "comparisons": len(comparisons),
            "ranking_figures": [str(p) for p in ranking_figures]}
