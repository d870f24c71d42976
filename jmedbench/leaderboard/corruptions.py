"""robustness.csv: one row per entry x corruption x severity, from the table each run scored
with ``--robustness`` keeps in ``details["robustness"]["table"]`` (see
:mod:`jmedbench.engine.robustness`): the mean over the entry's seeds of every number the
leaderboard's columns name (the headline Dice, IoU, HD95, BMD errors, ...) and its SD over
seeds. A number undefined under a corruption (the BMD where it destroys the HU scale) is
empty."""

from __future__ import annotations

import csv
import io
from typing import Any

from jmedbench.stats import mean_sd

ENTRY_KEYS = ("model", "strategy", "dataset", "profile", "backend")


def corruption_table(entries: list[dict[str, Any]], runs: dict[str, dict[str, Any]],
                     keys: list[str]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows; ``keys``: the metric keys to report, in order (those no row has are
    left out)."""
    found: list[tuple[dict, dict[tuple, list[dict]]]] = []
    present: set[str] = set()
    for entry in entries:
        cells: dict[tuple, list[dict]] = {}
        for run_id in entry["runs"]:
            table = (((runs.get(run_id) or {}).get("details") or {}).get("robustness")
                     or {}).get("table") or []
            for row in table:
                cells.setdefault((row["family"], row["corruption"], row["severity"]),
                                 []).append(row)
                present.update(k for k in keys if k in row)
        if cells:
            found.append((entry, cells))
    shown = [k for k in keys if k in present]
    header = [*ENTRY_KEYS, "family", "corruption", "severity", "seeds",
              *(c for k in shown for c in (k, f"{k}_sd"))]
    rows = []
    for entry, cells in found:
        for (family, corruption, severity), seeds in sorted(cells.items()):
            numbers = []
            for key in shown:
                summary = mean_sd([r.get(key) for r in seeds])
                numbers += [summary["mean"], summary["sd"]]
            rows.append([*(entry[k] for k in ENTRY_KEYS), family, corruption, severity,
                         len(seeds), *numbers])
    return header, rows


def render_corruptions_csv(header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return buf.getvalue()
