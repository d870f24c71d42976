"""Leaderboards, generated from the results store and never edited by hand (as RobustBench):
one JSON file per entry (model x strategy x dataset x profile x backend, aggregated over seeds),
then Markdown, CSV and a self-contained sortable HTML page rendered from those entries."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from jmedbench.store import Store, clean_nan

# (key in the entry's metrics, column title, digits, higher is better)
COLUMNS: list[tuple[str, str, int, bool]] = [
    ("dice", "Dice", 4, True),
    ("iou", "IoU", 4, True),
    ("hd95", "HD95 mm", 2, False),
    ("shift_dice", "Cross-site Dice", 4, True),
    ("mpc_dice", "mPC", 4, True),
    ("rpc_dice", "rPC", 4, True),
    ("bmd_mae", "BMD MAE HU", 2, False),
    ("bmd_bias", "BMD bias HU", 2, False),
    ("bmd_loa_low", "LoA low", 1, False),
    ("bmd_loa_high", "LoA high", 1, False),
    ("bmd_category_agreement", "Category agr.", 3, True),
    ("shift_bmd_mae", "Cross-site BMD MAE", 2, False),
]
COST_COLUMNS = [("params_m", "Params M", 2), ("gflops", "GFLOPs", 3),
                ("train_images_per_s", "Train img/s", 1)]


def mean_ci(values: list[float]) -> dict[str, Any]:
    """Mean and 95% t-interval over seeds (no interval from a single seed)."""
    arr = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return {"mean": None, "ci95": None, "n": 0}
    mean = float(arr.mean())
    if arr.size < 2:
        return {"mean": mean, "ci95": None, "n": 1}
    half = float(stats.t.ppf(0.975, arr.size - 1) * arr.std(ddof=1) / math.sqrt(arr.size))
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": int(arr.size)}


def collect_entries(store: Store, registry: Any = None) -> list[dict[str, Any]]:
    return entries_from_runs(store.runs(kind="run", status="completed"), registry)


def entries_from_runs(completed: list[dict[str, Any]], registry: Any = None
                      ) -> list[dict[str, Any]]:
    """Leaderboard entries (aggregated over seeds, ranked by Dice) from completed run records."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in completed:
        key = (record["model"], record["strategy"], record["dataset"], record["profile"],
               record["backend"] or "torch")
        groups[key].append(record)
    entries = []
    for (model, strategy, dataset, profile, backend), records in sorted(groups.items()):
        latest = {}
        for r in records:  # one run per seed: the latest
            latest[r["seed"]] = r
        records = [latest[s] for s in sorted(latest)]
        names = sorted({k for r in records for k, v in (r["metrics"] or {}).items()
                        if isinstance(v, (int, float)) and not k.endswith("_undefined")})
        metrics = {name: mean_ci([(r["metrics"] or {}).get(name) for r in records])
                   for name in names}
        details = [r["details"] or {} for r in records]
        params = details[-1].get("params")
        prov = records[-1]["provenance"] or {}
        entry = {
            "model": model, "strategy": strategy, "dataset": dataset, "profile": profile,
            "backend": backend, "seeds": sorted(latest), "runs": [r["run_id"] for r in records],
            "metrics": metrics,
            "params": params, "params_m": params / 1e6 if params else None,
            "gflops": details[-1].get("gflops"),
            "train_images_per_s": mean_ci([d.get("train", {}).get("images_per_second")
                                           for d in details])["mean"],
            "budget": details[-1].get("budget"),
            "versions": prov.get("versions"), "git_commit": prov.get("git_commit"),
            "hardware": {"cpu": prov.get("cpu"), "cpu_count": prov.get("cpu_count"),
                         "torch_threads": prov.get("torch_threads"),
                         "platform": prov.get("platform")},
            "date": dt.datetime.fromtimestamp(max(r["finished"] or r["created"] for r in records),
                                              dt.timezone.utc).isoformat(timespec="seconds"),
        }
        if registry is not None:
            try:
                spec = registry.model(model, backend)
                entry["family"], entry["citation"] = spec.family, spec.citation
            except Exception:  # a model whose plugin is not installed here any more
                entry["family"], entry["citation"] = None, None
        entries.append(entry)
    entries.sort(key=lambda e: -(e["metrics"].get("dice", {}).get("mean") or -1))
    return entries


def _value(entry: dict[str, Any], key: str) -> Any:
    if key in entry["metrics"]:
        return entry["metrics"][key]["mean"]
    return entry.get(key)


def _fmt(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table_rows(entries: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["Rank", "Model", "Strategy", "Dataset", "Profile", "Seeds"]
    header += [title for _, title, _, _ in COLUMNS] + [title for _, title, _ in COST_COLUMNS]
    rows = []
    for rank, e in enumerate(entries, 1):
        dice = e["metrics"].get("dice", {})
        dice_text = _fmt(dice.get("mean"), 4)
        if dice.get("ci95"):
            dice_text += f" ± {(dice['ci95'][1] - dice['ci95'][0]) / 2:.4f}"
        row = [str(rank), e["model"], e["strategy"], e["dataset"], e["profile"],
               str(len(e["seeds"])), dice_text]
        row += [_fmt(_value(e, key), digits) for key, _, digits, _ in COLUMNS[1:]]
        row += [_fmt(_value(e, key), digits) for key, _, digits in COST_COLUMNS]
        rows.append(row)
    return header, rows


def render_markdown(entries: list[dict[str, Any]], command: str) -> str:
    header, rows = table_rows(entries)
    lines = ["# jmedbench leaderboard", "",
             "Generated from the results store by `" + command + "`; do not edit by hand.",
             "Dice is the mean over seeds (± half-width of the 95% t-interval where there are "
             "several). BMD errors are in HU; LoA are the 95% Bland-Altman limits.", ""]
    if not entries:
        lines += ["No completed runs in the store yet.", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines) + "\n"


def render_csv(entries: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    keys = [k for k, _, _, _ in COLUMNS]
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model", "strategy", "dataset", "profile", "backend", "seeds", *keys,
                     "dice_ci95_low", "dice_ci95_high", *(k for k, _, _ in COST_COLUMNS)])
    for e in entries:
        ci = e["metrics"].get("dice", {}).get("ci95") or [None, None]
        writer.writerow([e["model"], e["strategy"], e["dataset"], e["profile"], e["backend"],
                         " ".join(map(str, e["seeds"])),
                         *(_value(e, k) for k in keys), *ci,
                         *(_value(e, k) for k, _, _ in COST_COLUMNS)])
    return buf.getvalue()


HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>jmedbench leaderboard</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
td:nth-child(2),td:nth-child(3),td:nth-child(4),td:nth-child(5){text-align:left}
th{background:#eef;cursor:pointer;user-select:none}
th.sorted-asc::after{content:" \\25B2"} th.sorted-desc::after{content:" \\25BC"}
tr:nth-child(even){background:#f8f8f8}
</style></head><body>
<h1>jmedbench leaderboard</h1>
<p>Generated from the results store by <code>__COMMAND__</code> on __DATE__. Click a column to sort.</p>
<p id="count">__COUNT__ entries</p>
<table id="board"><thead><tr>__HEAD__</tr></thead><tbody>
__BODY__
</tbody></table>
<script>
(function(){
  var table=document.getElementById('board');
  var heads=table.tHead.rows[0].cells;
  function key(cell){var v=cell.getAttribute('data-v');
    if(v===null||v===''){return null} var n=parseFloat(v); return isNaN(n)?v.toLowerCase():n;}
  function sortBy(col,desc){
    var body=table.tBodies[0], rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){var x=key(a.cells[col]),y=key(b.cells[col]);
      if(x===null&&y===null)return 0; if(x===null)return 1; if(y===null)return -1;
      if(x<y)return desc?1:-1; if(x>y)return desc?-1:1; return 0;});
    rows.forEach(function(r){body.appendChild(r)});
    for(var i=0;i<heads.length;i++){heads[i].className=''}
    heads[col].className=desc?'sorted-desc':'sorted-asc';
    table.setAttribute('data-sorted',heads[col].getAttribute('data-key')+(desc?':desc':':asc'));
  }
  for(var i=0;i<heads.length;i++){(function(col){heads[col].addEventListener('click',function(){
    sortBy(col,heads[col].className!=='sorted-desc');});})(i)}
  // #sort=KEY:asc|desc sorts on load (a link to a sorted view; also used by the tests)
  var m=/sort=([^:&]+)(?::(asc|desc))?/.exec(location.hash);
  if(m){for(var j=0;j<heads.length;j++){if(heads[j].getAttribute('data-key')===m[1]){
    sortBy(j,m[2]!=='asc');}}}
})();
</script></body></html>
"""


def render_html(entries: list[dict[str, Any]], command: str) -> str:
    header, rows = table_rows(entries)
    keys = ["rank", "model", "strategy", "dataset", "profile", "seeds"]
    keys += [k for k, _, _, _ in COLUMNS] + [k for k, _, _ in COST_COLUMNS]
    head = "".join(f'<th data-key="{html.escape(k)}">{html.escape(t)}</th>'
                   for k, t in zip(keys, header))
    body = []
    for rank, (e, row) in enumerate(zip(entries, rows), 1):
        raw = [rank, e["model"], e["strategy"], e["dataset"], e["profile"], len(e["seeds"])]
        raw += [_value(e, k) for k in keys[6:]]
        cells = "".join(
            f'<td data-v="{html.escape("" if v is None else str(v), quote=True)}">'
            f"{html.escape(text)}</td>" for v, text in zip(raw, row))
        body.append(f'<tr data-model="{html.escape(e["model"], quote=True)}">{cells}</tr>')
    return (HTML_TEMPLATE.replace("__COMMAND__", html.escape(command))
            .replace("__DATE__", dt.date.today().isoformat())
            .replace("__COUNT__", str(len(entries)))
            .replace("__HEAD__", head).replace("__BODY__", "\n".join(body)))


def entry_filename(entry: dict[str, Any]) -> str:
    parts = [entry["model"], entry["strategy"], entry["dataset"], entry["profile"],
             entry["backend"]]
    return "__".join(re.sub(r"[^A-Za-z0-9_.+-]", "-", p) for p in parts) + ".json"


def build(store: Store, out_dir: Path, command: str, registry: Any = None) -> dict[str, Any]:
    """Write entries/*.json, leaderboard.{md,csv,json}, index.html, README.md and, when any
    entry has a Dice, leaderboard.png; return a summary."""
    from jmedbench.leaderboard_plot import plot_leaderboard
    from jmedbench.leaderboard_readme import render_readme

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
    (out_dir / "leaderboard.md").write_text(render_markdown(entries, command))
    (out_dir / "leaderboard.csv").write_text(render_csv(entries))
    (out_dir / "leaderboard.json").write_text(json.dumps(clean_nan(entries), indent=2) + "\n")
    (out_dir / "index.html").write_text(render_html(entries, command))
    run_ids = {run_id for entry in entries for run_id in entry["runs"]}
    runs = [r for r in completed if r["run_id"] in run_ids]
    all_models = registry.names("models") if registry is not None else None
    (out_dir / "README.md").write_text(render_readme(entries, runs, command, str(store.path),
                                                     all_models))
    figure = out_dir / "leaderboard.png"
    if not plot_leaderboard(entries, figure) and figure.exists():
        figure.unlink()  # generated earlier from runs no longer in the store
    return {"entries": len(entries), "models": len({e["model"] for e in entries}),
            "out": str(out_dir), "figure": str(figure) if figure.exists() else None}
