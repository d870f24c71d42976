"""leaderboards/README.md, generated like every other file there: what the files are, the
commands that reproduce them (derived from the stored runs), the wall time the runs took, and
how each strategy compares with the reference strategy (``StrategySpec.reference``) model by
model, on the columns the metric plugins mark for the ``compare`` table."""

from __future__ import annotations

import datetime as dt
import statistics
from typing import Any

from jmedbench.leaderboard.aggregate import entry_mean
from jmedbench.specs import Column

FILES = [
    ("leaderboard.md", "the ranked table (by clean Dice), with subject-level intervals, rank "
                       "intervals and the clinical endpoint's main columns"),
    ("ranking.md", "per score: rank, 95% rank interval, bootstrap CI, Wilcoxon test-then-rank, "
                   "Kendall's tau; the clinical endpoint of every entry"),
    ("leaderboard.csv", "the same, one row per entry and every column, for a spreadsheet"),
    ("index.html", "self-contained page: sortable table, filters, blob plot, significance map, "
                   "Dice-vs-BMD scatter"),
    ("leaderboard.png", "clean Dice against BMD error and against cross-site Dice"),
    ("blob-*.png", "bootstrap rank distributions per score (blob plot)"),
    ("significance-*.png", "significance maps per score (paired Wilcoxon, Holm)"),
    ("robustness.csv", "every entry x corruption x severity (mean and SD over seeds)"),
    ("entries/", "one JSON file per entry: every metric (mean, 95% CI over seeds), rankings, "
                 "clinical endpoint, per-subject scores, params, GFLOPs, img/s, budget, "
                 "versions, git commit, hardware, date"),
    ("leaderboard.json", "all entries in one file (without the per-subject scores)"),
    ("ranking.json", "the comparisons: orders, rank distributions, Holm-adjusted p-values"),
]


def _joined(values: set) -> str:
    return ",".join(str(v) for v in sorted(values))


def bench_command(entries: list[dict[str, Any]], all_models: list[str] | None,
                  store: str, robustness_key: str) -> str:
    models = {e["model"] for e in entries}
    pattern = "'*'" if all_models and models == set(all_models) else _joined(models)
    parts = [f"jmedbench bench --models {pattern}",
             f"--strategies {_joined({e['strategy'] for e in entries})}",
             f"--datasets {_joined({e['dataset'] for e in entries})}",
             f"--profile {_joined({e['profile'] for e in entries})}",
             f"--seeds {_joined({s for e in entries for s in e['seeds']})}"]
    backends = {e["backend"] for e in entries}
    if backends != {"torch"}:
        parts.append(f"--backend {_joined(backends)}")
    if any(entry_mean(e, robustness_key) is not None for e in entries):
        parts.append("--robustness")
    return " ".join(parts) + f" --store {store}"


def comparison_rows(entries: list[dict[str, Any]], reference: str,
                    columns: list[Column]) -> list[list[str]]:
    """Per strategy other than ``reference`` and per column: in how many models it beats the
    reference, and the median of the per-model difference (strategy - reference)."""
    by_model: dict[tuple, dict[str, dict]] = {}
    for e in entries:
        by_model.setdefault((e["model"], e["dataset"], e["profile"]), {})[e["strategy"]] = e
    rows = []
    strategies = sorted({e["strategy"] for e in entries} - {reference})
    for strategy in strategies:
        for column in columns:
            key = column.key
            diffs = [entry_mean(s[strategy], key) - entry_mean(s[reference], key)
                     for s in by_model.values() if strategy in s and reference in s
                     and entry_mean(s[strategy], key) is not None
                     and entry_mean(s[reference], key) is not None]
            if diffs:
                better = sum(1 for d in diffs if (d > 0 if column.higher_is_better else d < 0))
                rows.append([strategy, column.description or column.title,
                             f"{better} / {len(diffs)}",
                             f"{statistics.median(diffs):+.3f}"])
    return rows


IDLE_GAP_S = 600.0  # no run in progress for this long: the next run starts a new stretch


def run_stretches(runs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The runs split where none was in progress for more than :data:`IDLE_GAP_S`, in order."""
    out: list[list[dict[str, Any]]] = []
    busy_until = -float("inf")
    for r in sorted(runs, key=lambda r: r["created"]):
        if r["created"] - busy_until > IDLE_GAP_S:
            out.append([])
        out[-1].append(r)
        busy_until = max(busy_until, r["finished"] or r["created"])
    return out


def _timing(entries: list[dict[str, Any]], runs: list[dict[str, Any]], whose: str) -> str:
    start = min(r["created"] for r in runs)
    end = max(r["finished"] or r["created"] for r in runs)
    cpu = sum(sum((r["timings"] or {}).values()) for r in runs)
    day = dt.datetime.fromtimestamp(start, dt.timezone.utc).strftime("%Y-%m-%d")
    hosts = _joined({f"{e['hardware']['cpu']}, {e['hardware']['cpu_count']} cores, trained on "
                     f"{e.get('execution') or 'cpu fp32'}" for e in entries})
    return (f"The {len(runs)} runs {f'of the {whose}models ' if whose else ''}took "
            f"**{end - start:.0f} s "
            f"({(end - start) / 60:.0f} min)** from the first start to the last finish on {day} "
            f"({hosts}); their stages add up to {cpu:.0f} s.")


def render_readme(entries: list[dict[str, Any]], runs: list[dict[str, Any]],
                  build_command: str, store: str, all_models: list[str] | None,
                  reference: str, compared: list[Column], robustness_key: str) -> str:
    """``compared``: the ``compare`` columns; ``robustness_key``: a metric that entries scored
    with ``--robustness`` have (the headline's mPC)."""
    lines = ["# Published leaderboard", "",
             "Generated by `" + build_command + "` from the results store; do not edit by "
             "hand. What the entries mean and what they show: "
             "[docs/leaderboard.md](../docs/leaderboard.md).", "",
             "| file | what |", "| --- | --- |"]
    lines += [f"| [{name}]({name}) | {what} |" for name, what in FILES]
    lines += ["", "## Reproduce", ""]
    if not entries:
        return "\n".join(lines + ["No completed runs in the store yet.", ""])
    # One bench line and one wall time per stretch of runs (the zoo's matrix, later the
    # libraries'), so that a span never counts the days between two matrices.
    stretches = run_stretches(runs)
    several = len(stretches) > 1
    lines += ["From the repository root, after the README's install"
              + (" (with the extra of each plugin in the table's Plugin column)"
                 if len({e.get("plugin") for e in entries}) > 1 else "") + ":", "", "```bash"]
    groups = []
    for stretch in stretches:
        ids = {r["run_id"] for r in stretch}
        group = [e for e in entries if ids & set(e["runs"])]
        groups.append(group)
        lines.append(bench_command(group, None if several else all_models, store,
                                   robustness_key))
    lines += [build_command, "```", ""]
    for stretch, group in zip(stretches, groups):
        plugins = _joined({e.get("plugin") or "?" for e in group})
        lines.append(_timing(group, stretch, f"{plugins} " if several else ""))
    lines += ["`bench` resumes: run it again after an interruption.", ""]
    rows = comparison_rows(entries, reference, compared)
    if rows:
        lines += [f"## Strategies against {reference}", "",
                  f"Models in which the strategy beats `{reference}`, and the median over "
                  f"models of the difference strategy - {reference}:", "",
                  "| strategy | metric | better | median difference |",
                  "| --- | --- | --: | --: |"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)
