"""Leaderboard entries as tables: Markdown, CSV and a self-contained sortable HTML page (the
page's markup and script are in ``page.html``, package data). The columns are those the metric
plugins declare for the ``leaderboard`` table (:func:`jmedbench.columns.table_columns`), the
headline metric first with its 95% interval."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import math
from importlib import resources
from typing import Any

from jmedbench.leaderboard.aggregate import entry_value
from jmedbench.specs import Column

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


def table_rows(entries: list[dict[str, Any]], columns: list[Column]
               ) -> tuple[list[str], list[list[str]]]:
    """Header and text rows; ``columns[0]`` (the headline) shows ± the interval's half-width."""
    header = ENTRY_HEADER + [c.title for c in columns] + [t for _, t, _ in COST_COLUMNS]
    first, others = columns[0], columns[1:]
    rows = []
    for rank, e in enumerate(entries, 1):
        headline = e["metrics"].get(first.key, {})
        headline_text = _fmt(headline.get("mean"), first.digits)
        if headline.get("ci95"):
            half = (headline["ci95"][1] - headline["ci95"][0]) / 2
            headline_text += f" ± {half:.{first.digits}f}"
        row = [str(rank), e["model"], e["strategy"], e["dataset"], e["profile"],
               str(len(e["seeds"])), headline_text]
        row += [_fmt(entry_value(e, c.key), c.digits) for c in others]
        row += [_fmt(entry_value(e, key), digits) for key, _, digits in COST_COLUMNS]
        rows.append(row)
    return header, rows


def render_markdown(entries: list[dict[str, Any]], columns: list[Column], command: str) -> str:
    header, rows = table_rows(entries, columns)
    lines = ["# jmedbench leaderboard", "",
             "Generated from the results store by `" + command + "`; do not edit by hand.",
             f"{columns[0].title} is the mean over seeds (± half-width of the 95% t-interval "
             "where there are several). BMD errors are in HU; LoA are the 95% Bland-Altman "
             "limits.", ""]
    if not entries:
        lines += ["No completed runs in the store yet.", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines) + "\n"


def render_csv(entries: list[dict[str, Any]], columns: list[Column]) -> str:
    buf = io.StringIO()
    keys = [c.key for c in columns]
    headline = columns[0].key
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model", "strategy", "dataset", "profile", "backend", "seeds", *keys,
                     f"{headline}_ci95_low", f"{headline}_ci95_high",
                     *(k for k, _, _ in COST_COLUMNS)])
    for e in entries:
        ci = e["metrics"].get(headline, {}).get("ci95") or [None, None]
        writer.writerow([e["model"], e["strategy"], e["dataset"], e["profile"], e["backend"],
                         " ".join(map(str, e["seeds"])),
                         *(entry_value(e, k) for k in keys), *ci,
                         *(entry_value(e, k) for k, _, _ in COST_COLUMNS)])
    return buf.getvalue()


def render_html(entries: list[dict[str, Any]], columns: list[Column], command: str) -> str:
    header, rows = table_rows(entries, columns)
    keys = ENTRY_KEYS + [c.key for c in columns] + [k for k, _, _ in COST_COLUMNS]
    head = "".join(f'<th data-key="{html.escape(k)}">{html.escape(t)}</th>'
                   for k, t in zip(keys, header))
    body = []
    for rank, (e, row) in enumerate(zip(entries, rows), 1):
        raw = [rank, e["model"], e["strategy"], e["dataset"], e["profile"], len(e["seeds"])]
        raw += [entry_value(e, k) for k in keys[len(ENTRY_KEYS):]]
        cells = "".join(
            f'<td data-v="{html.escape("" if v is None else str(v), quote=True)}">'
            f"{html.escape(text)}</td>" for v, text in zip(raw, row))
        body.append(f'<tr data-model="{html.escape(e["model"], quote=True)}">{cells}</tr>')
    page = resources.files("jmedbench.leaderboard").joinpath("page.html").read_text("utf-8")
    return (page.replace("__COMMAND__", html.escape(command))
            .replace("__DATE__", dt.date.today().isoformat())
            .replace("__COUNT__", str(len(entries)))
            .replace("__HEAD__", head).replace("__BODY__", "\n".join(body)))
