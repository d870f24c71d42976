"""Leaderboard entries as tables: Markdown, CSV and a self-contained sortable HTML page (the
page's markup and script are in ``page.html``, package data). The columns are those the metric
plugins declare for the ``leaderboard`` table (:func:`jmedbench.columns.table_columns`), the
headline metric first with its 95% interval over seeds, then the ranking and clinical fields
(:mod:`~jmedbench.leaderboard.fields`; the Markdown table shows the compact ones, the page and
the CSV all of them). The page draws the blob plot, the significance map and the Dice-vs-BMD
scatter itself (SVG, from the data embedded in it), with filters."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import math
from importlib import resources
from typing import Any

from jmedbench.leaderboard.aggregate import entry_id, entry_value
from jmedbench.leaderboard.fields import CLINICAL_FIELDS, field_cells, fields, flat_values
from jmedbench.leaderboard.ranking import entry_label
from jmedbench.leaderboard.subject_scores import BMD_SCORE, Score
from jmedbench.specs import Column
from jmedbench.store import clean_nan

# (entry key, column title, digits): what a model costs, next to its scores
COST_COLUMNS = [("params_m", "Params M", 2), ("gflops", "GFLOPs", 3),
                ("train_images_per_s", "Train img/s", 1)]
ENTRY_HEADER = ["Rank", "Model", "Strategy", "Dataset", "Profile", "Seeds"]
ENTRY_KEYS = ["rank", "model", "strategy", "dataset", "profile", "seeds"]


def _fmt(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table_rows(entries: list[dict[str, Any]], columns: list[Column],
               scores: list[Score] = (), compact: bool = False
               ) -> tuple[list[str], list[str], list[list[tuple[Any, str]]]]:
    """Keys, header and rows of (raw value, text) cells; ``columns[0]`` (the headline) shows ±
    the interval's half-width over seeds. With ``scores``, the ranking and clinical fields
    follow (only the compact ones when ``compact``)."""
    shown = [f for f in fields(list(scores)) if f.compact or not compact] if scores else []
    # Speeds measured on different devices or formats are never compared silently: the
    # column then names each entry's execution.
    mixed = len({e.get("execution") for e in entries}) > 1
    # Where the table holds more than one plugin's models (the zoo beside smp and MONAI), each
    # entry says whose implementation it scored.
    plugins = len({e.get("plugin") for e in entries}) > 1
    keys = (ENTRY_KEYS + (["plugin"] if plugins else []) + [c.key for c in columns]
            + [k for k, _, _ in COST_COLUMNS] + (["execution"] if mixed else [])
            + [f.key for f in shown])
    header = (ENTRY_HEADER + (["Plugin"] if plugins else []) + [c.title for c in columns]
              + [t for _, t, _ in COST_COLUMNS]
              + (["Trained on (speeds differ by device)"] if mixed else [])
              + [f.title for f in shown])
    first, others = columns[0], columns[1:]
    rows = []
    for rank, e in enumerate(entries, 1):
        headline = e["metrics"].get(first.key, {})
        headline_text = _fmt(headline.get("mean"), first.digits)
        if headline.get("ci95"):
            half = (headline["ci95"][1] - headline["ci95"][0]) / 2
            headline_text += f" ± {half:.{first.digits}f}"
        row = [(rank, str(rank)), (e["model"], e["model"]), (e["strategy"], e["strategy"]),
               (e["dataset"], e["dataset"]), (e["profile"], e["profile"]),
               (len(e["seeds"]), str(len(e["seeds"])))]
        if plugins:
            row.append((e.get("plugin"), e.get("plugin") or ""))
        row.append((headline.get("mean"), headline_text))
        row += [(entry_value(e, c.key), _fmt(entry_value(e, c.key), c.digits)) for c in others]
        row += [(entry_value(e, key), _fmt(entry_value(e, key), digits))
                for key, _, digits in COST_COLUMNS]
        if mixed:
            row.append((e.get("execution"), e.get("execution") or ""))
        if shown:
            cells = field_cells(e, list(scores))
            row += [cells[f.key] for f in shown]
        rows.append(row)
    return keys, header, rows


def render_markdown(entries: list[dict[str, Any]], columns: list[Column], command: str,
                    scores: list[Score] = ()) -> str:
    _, header, rows = table_rows(entries, columns, scores, compact=True)
    lines = ["# jmedbench leaderboard", "",
             "Generated from the results store by `" + command + "`; do not edit by hand.",
             f"{columns[0].title} is the mean over seeds (± half-width of the 95% t-interval "
             "where there are several). BMD errors are in HU; LoA are the 95% Bland-Altman "
             "limits. \"(subjects)\": mean ± SD over seeds [95% bootstrap interval over the "
             "test subjects]; Rank: full ranking [95% bootstrap rank interval]; every ranked "
             "score, the tests and the clinical endpoint: [ranking.md](ranking.md); n/a: no "
             "per-subject scores in the entry's runs.", ""]
    if not entries:
        lines += ["No completed runs in the store yet.", ""]
    lines.append("| " + " | ".join(h.replace("|", "\\|") for h in header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        lines.append("| " + " | ".join(text.replace("|", "\\|") for _, text in row) + " |")
    return "\n".join(lines) + "\n"


def render_csv(entries: list[dict[str, Any]], columns: list[Column],
               scores: list[Score] = ()) -> str:
    buf = io.StringIO()
    keys = [c.key for c in columns]
    headline = columns[0].key
    flat_keys = list(flat_values({}, list(scores))) if scores else []
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model", "strategy", "dataset", "profile", "backend", "plugin", "seeds",
                     *keys,
                     f"{headline}_ci95_low", f"{headline}_ci95_high",
                     *(k for k, _, _ in COST_COLUMNS), *flat_keys])
    for e in entries:
        ci = e["metrics"].get(headline, {}).get("ci95") or [None, None]
        flat = flat_values(e, list(scores)) if scores else {}
        writer.writerow([e["model"], e["strategy"], e["dataset"], e["profile"], e["backend"],
                         e.get("plugin") or "", " ".join(map(str, e["seeds"])),
                         *(entry_value(e, k) for k in keys), *ci,
                         *(entry_value(e, k) for k, _, _ in COST_COLUMNS),
                         *(flat[k] for k in flat_keys)])
    return buf.getvalue()


def page_data(entries: list[dict[str, Any]], comparisons: list[dict[str, Any]],
              scores: list[Score], headline: Column) -> dict[str, Any]:
    """What the page's script draws from: entries (id, label, model, strategy), the
    comparisons (rankings, significance) and the scores it can be ranked by."""
    return {
        "entries": [{"id": entry_id(e), "label": entry_label(e), "model": e["model"],
                     "strategy": e["strategy"]} for e in entries],
        "strategies": sorted({e["strategy"] for e in entries}),
        "scores": [{"key": s.key, "title": s.title, "digits": s.digits} for s in scores],
        "headline": scores[0].key if scores else headline.key,
        "headline_title": scores[0].title if scores else headline.title,
        "bmd": BMD_SCORE,
        "comparisons": [{**c, "scores": {k: {**r, "p_holm": [[_short(p) for p in row]
                                                            for row in r["p_holm"]]}
                                         for k, r in c["scores"].items()}}
                        for c in comparisons],
    }


def _short(p: float | None) -> float | None:
    """A p-value to 3 significant digits (the page shows it on hover)."""
    return None if p is None or p != p else float(f"{p:.3g}")


def _json_for_script(data: Any) -> str:
    """JSON safe inside a <script> element (no "</" can close it)."""
    text = json.dumps(clean_nan(data), allow_nan=False, separators=(",", ":"))
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def render_html(entries: list[dict[str, Any]], columns: list[Column], command: str,
                scores: list[Score] = (), comparisons: list[dict[str, Any]] = ()) -> str:
    keys, header, rows = table_rows(entries, columns, scores)
    head = "".join(f'<th data-key="{html.escape(k)}">{html.escape(t)}</th>'
                   for k, t in zip(keys, header))
    body = []
    for e, row in zip(entries, rows):
        cells = "".join(
            f'<td data-v="{html.escape("" if v is None else str(v), quote=True)}">'
            f"{html.escape(text)}</td>" for v, text in row)
        body.append(f'<tr data-model="{html.escape(e["model"], quote=True)}" '
                    f'data-id="{html.escape(entry_id(e), quote=True)}">{cells}</tr>')
    page = resources.files("jmedbench.leaderboard").joinpath("page.html").read_text("utf-8")
    data = _json_for_script(page_data(entries, list(comparisons), list(scores), columns[0]))
    return (page.replace("__COMMAND__", html.escape(command))
            .replace("__DATE__", dt.date.today().isoformat())
            .replace("__COUNT__", str(len(entries)))
            .replace("__HEADLINE__", html.escape(scores[0].title if scores else columns[0].title))
            .replace("__HEAD__", head).replace("__BODY__", "\n".join(body))
            .replace("__DATA__", data))


def _num(value: Any, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_ranking_markdown(entries: list[dict[str, Any]], comparisons: list[dict[str, Any]],
                            scores: list[Score], command: str) -> str:
    """ranking.md: per comparison and score, the entries in full-rank order with mean ± SD over
    seeds, the bootstrap interval, the rank interval and the test-then-rank columns; then the
    clinical endpoint of every entry. How to read them: docs/leaderboard.md."""
    by_id = {entry_id(e): e for e in entries}
    lines = ["# Rankings with their uncertainty", "",
             "Generated from the results store by `" + command + "`; do not edit by hand. "
             "How to read it: [docs/leaderboard.md](../docs/leaderboard.md).", ""]
    if not comparisons:
        lines += ["No run in the store has per-subject scores: no rankings over subjects.", ""]
    for comparison in comparisons:
        lines += [f"## {comparison['dataset']} / {comparison['profile']} "
                  f"({len(comparison['entries'])} entries)", ""]
        for score in scores:
            result = comparison["scores"].get(score.key)
            if result is None:
                continue
            tau = result["kendall_tau"]
            lines += [f"### {score.title} ({'higher' if score.higher_is_better else 'lower'} "
                      "is better)", "",
                      f"{result['subjects']} {result['split']} subjects, {result['resamples']} "
                      f"bootstrap resamples (seed {result['bootstrap_seed']}); ranking "
                      f"stability, Kendall's tau bootstrap vs full ranking: mean "
                      f"{_num(tau['mean'], 3)}, median {_num(tau['median'], 3)}."]
            if result["failure_value"] is not None:
                lines[-1] += (f" A failed BMD counts as {result['failure_value']:.2f} HU "
                              "(the largest measured |error| + 1 HU).")
            lines += ["", "| Rank | 95% rank interval | Entry | Mean ± SD over seeds | "
                          "95% CI (subjects) | Sig. better than | Significance rank |"
                      + (" Failed BMDs |" if result["failure_value"] is not None else ""),
                      "|--:|--:|---|--:|--:|--:|--:|"
                      + ("--:|" if result["failure_value"] is not None else "")]
            for i in result["order"]:
                r = result["entries"][i]
                ci = r["ci95"]
                mean = _num(r["mean"], score.digits) + (
                    f" ± {r['sd']:.{score.digits}f}" if r["sd"] is not None else "")
                cells = [str(r["rank"]), f"{r['rank_ci95'][0]}–{r['rank_ci95'][1]}",
                         entry_label(by_id[i]) if i in by_id else i, mean,
                         "n/a" if ci is None else
                         f"[{ci[0]:.{score.digits}f}, {ci[1]:.{score.digits}f}]",
                         str(r["better_than"]), str(r["significance_rank"])]
                if result["failure_value"] is not None:
                    cells.append(str(r["failures"]))
                lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
            lines.append("")
    clinical = [e for e in entries if e.get("clinical")]
    if clinical:
        lines += ["## Clinical endpoint", "",
                  "Mean ± SD over seeds. k, Z: the paper's Eq. 2, D = -k * age + Z per sex x "
                  "site on the test and cross-site subjects; errors are |predicted-mask line - "
                  "reference-mask line| (vs truth: - the line of the true BMDs). Agreement on "
                  "the test subjects.", ""]
        header = ["Model", "Strategy", "Dataset", "Profile", *(t for _, t, *_ in CLINICAL_FIELDS)]
        lines.append("| " + " | ".join(h.replace("|", "\\|") for h in header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        for e in clinical:
            cells = field_cells(e, [])
            texts = [e["model"], e["strategy"], e["dataset"], e["profile"],
                     *(cells[key][1] for key, *_ in CLINICAL_FIELDS)]
            lines.append("| " + " | ".join(t.replace("|", "\\|") for t in texts) + " |")
        lines.append("")
        reference = next(iter(clinical[0]["clinical"]["seeds"].values()))
        if reference["groups"]:
            lines += ["Lines from the reference masks and from the true BMDs (first seed of "
                      f"{entry_label(clinical[0])}; the same subjects for every entry):", "",
                      "| sex/site | n | k reference | k true | Z reference | Z true |",
                      "|---|--:|--:|--:|--:|--:|"]
            for group, g in reference["groups"].items():
                lines.append(f"| {group} | {g['n']} | {_num(g['k_reference'], 3)} | "
                             f"{_num(g['k_true'], 3)} | {_num(g['Z_reference'], 1)} | "
                             f"{_num(g['Z_true'], 1)} |")
            lines.append("")
    return "\n".join(lines)
