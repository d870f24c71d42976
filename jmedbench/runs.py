"""Browsing the stored runs (``jmedbench runs``): filter, compare two runs (metrics side by side
and, over their per-subject scores, a paired Wilcoxon signed-rank test), delete a run with its
files, export a run to a folder. Reads and writes only through :class:`jmedbench.store.Store`'s
API (filtering is done here, over ``store.runs()``, whatever database holds them)."""

from __future__ import annotations

import csv
import fnmatch
import json
import math
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from jmedbench.errors import UserError
from jmedbench.labels import CLASS_NAMES
from jmedbench.store import Store, clean_nan

FILTER_KEYS = ("model", "strategy", "dataset", "status", "profile")


def find_run(store: Store, run_id: str) -> dict[str, Any]:
    """``store.get_run`` (a unique prefix is enough), with the closest stored ids added to the
    line when there is no such run (a mistyped or truncated id)."""
    import difflib

    try:
        return store.get_run(run_id)
    except UserError as exc:
        ids = [r["run_id"] for r in store.runs()]
        close = difflib.get_close_matches(run_id, ids, n=3, cutoff=0.4)
        close += [i for i in ids if run_id in i and i not in close][:3 - len(close)]
        if not close or "ambiguous" in str(exc):
            raise
        raise UserError(f"{exc}; closest: {', '.join(close)}") from None


def parse_date(text: str, option: str) -> datetime:
    """``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM`` (local time), or one line naming the option."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"{option} {text!r}: expected a date YYYY-MM-DD (or "
                        f"YYYY-MM-DDTHH:MM)") from None


def filter_runs(records: list[dict[str, Any]], *, since: str | None = None,
                until: str | None = None, **patterns: str | None) -> list[dict[str, Any]]:
    """Runs newest first whose model, strategy, dataset, status and profile match the given
    shell patterns (``unet*``), created on or after ``since`` and on or before ``until``
    (a date alone means that whole day)."""
    unknown = set(patterns) - set(FILTER_KEYS)
    if unknown:
        raise ValueError(f"unknown filter(s) {sorted(unknown)}")
    low = parse_date(since, "--since").timestamp() if since else -math.inf
    high = math.inf
    if until:
        end = parse_date(until, "--until")
        if len(until) <= 10:  # a date: the whole day
            end += timedelta(days=1)
            high = end.timestamp()
        else:
            high = end.timestamp() + 1e-6
    out = []
    for record in records:
        if not low <= record["created"] < high:
            continue
        if all(pattern is None or fnmatch.fnmatchcase(str(record.get(key) or ""), pattern)
               for key, pattern in patterns.items()):
            out.append(record)
    return sorted(out, key=lambda r: r["created"], reverse=True)


def created_text(record: dict[str, Any]) -> str:
    return datetime.fromtimestamp(record["created"]).strftime("%Y-%m-%d %H:%M")


# -- compare -----------------------------------------------------------------------------------

@dataclass
class PairedTest:
    """A paired Wilcoxon signed-rank test of one per-subject score between two runs."""

    split: str
    metric: str
    n: int
    median_a: float
    median_b: float
    median_difference: float  # b - a
    p_value: float            # NaN when every difference is zero or n is 0


@dataclass
class Comparison:
    a: dict[str, Any]
    b: dict[str, Any]
    metrics: list[tuple[str, float, float, float]]  # key, a, b, b - a
    tests: list[PairedTest] = field(default_factory=list)
    subject_scores: bool = False  # both runs have per-subject scores


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _per_subject_values(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    """(split, subject) -> {metric: value}; a list per class becomes one value per class
    (``dice_cancellous``), as the aggregate metrics are named."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for row in rows:
        values: dict[str, float] = {}
        for key, value in row.items():
            if key in ("split", "subject"):
                continue
            if isinstance(value, list):
                names = (CLASS_NAMES if len(value) == len(CLASS_NAMES)
                         else CLASS_NAMES[1:] if len(value) == len(CLASS_NAMES) - 1
                         else [str(i) for i in range(len(value))])
                for name, item in zip(names, value):
                    number = _number(item)
                    if number is not None and math.isfinite(number) and name != "background":
                        values[f"{key}_{name}"] = number
            else:
                number = _number(value)
                if number is not None and math.isfinite(number):
                    values[key] = number
        out[(row["split"], row["subject"])] = values
    return out


def paired_tests(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]]
                 ) -> list[PairedTest]:
    """A paired Wilcoxon signed-rank test per split and metric over the subjects both runs
    scored (the same people: runs on the same dataset and seed)."""
    from scipy.stats import wilcoxon

    a, b = _per_subject_values(rows_a), _per_subject_values(rows_b)
    common = sorted(set(a) & set(b))
    tests = []
    for split in sorted({s for s, _ in common}):
        keys = [k for k in common if k[0] == split]
        metrics = sorted(set.intersection(*(set(a[k]) & set(b[k]) for k in keys)))
        for metric in metrics:
            x = np.array([a[k][metric] for k in keys])
            y = np.array([b[k][metric] for k in keys])
            d = y - x
            p = math.nan
            if np.any(d != 0):
                p = float(wilcoxon(y, x, zero_method="wilcox").pvalue)
            tests.append(PairedTest(split, metric, len(keys), float(np.median(x)),
                                    float(np.median(y)), float(np.median(d)), p))
    return tests


def compare_runs(store: Store, id_a: str, id_b: str, keys: list[str] | None = None
                 ) -> Comparison:
    """Metrics both runs have (``keys`` in that order, else every shared number), with the
    difference b - a, and the paired tests over their per-subject scores where both have
    them."""
    a, b = find_run(store, id_a), find_run(store, id_b)
    if a["run_id"] == b["run_id"]:
        raise UserError(f"runs compare: both ids name run {a['run_id']}")
    ma, mb = a.get("metrics") or {}, b.get("metrics") or {}
    for record, metrics in ((a, ma), (b, mb)):
        if not metrics:
            raise UserError(f"run {record['run_id']} is {record['status']} and has no metrics "
                            f"to compare")
    shared = [k for k in (keys or sorted(ma)) if k in ma and k in mb
              and not k.endswith("_undefined")]
    rows = []
    for key in shared:
        x, y = _number(ma[key]), _number(mb[key])
        if x is None or y is None:
            continue
        rows.append((key, x, y, y - x))
    subjects_a, subjects_b = store.subject_metrics(a["run_id"]), store.subject_metrics(b["run_id"])
    has_scores = bool(subjects_a) and bool(subjects_b)
    tests = paired_tests(subjects_a, subjects_b) if has_scores else []
    return Comparison(a, b, rows, tests, has_scores)


# -- delete, export ----------------------------------------------------------------------------

def run_files(store: Store, record: dict[str, Any]) -> list[Path]:
    """The files and folders of a run that deleting it removes: its folder under the store's
    artifacts root and recorded artifacts inside that root (never a file elsewhere)."""
    root = store.artifacts_root.resolve()
    found = []
    folder = store.artifacts_root / record["run_id"]
    if folder.exists():
        found.append(folder)
    for value in (record.get("artifacts") or {}).values():
        path = Path(str(value))
        if path.exists() and path.resolve().is_relative_to(root) and not any(
                path.resolve().is_relative_to(f.resolve()) for f in found):
            found.append(path)
    return found


def delete_run(store: Store, run_id: str) -> tuple[dict[str, Any], list[Path]]:
    """Remove a run (rows and its files); returns its record and the paths removed."""
    record = find_run(store, run_id)
    files = run_files(store, record)
    store.delete_run(record["run_id"])
    for path in files:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return record, files


def check_empty_folder(directory: Path, overwrite: bool, option: str) -> None:
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{option} {directory}: exists and is not a folder")
    if directory.is_dir() and any(directory.iterdir()) and not overwrite:
        raise UserError(f"{option} {directory}: folder exists and is not empty (give "
                        f"--overwrite to write into it, replacing files of the same names)")


def export_run(store: Store, run_id: str, directory: Path, overwrite: bool = False
               ) -> list[Path]:
    """A run as plain files: ``run.json`` (config, provenance, timings, metrics, details),
    ``image_metrics.csv``, ``subject_metrics.json`` and a copy of each recorded artifact
    (the trained weights). Returns the files written."""
    record = find_run(store, run_id)
    check_empty_folder(directory, overwrite, "runs export")
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    artifacts = {}
    for name, value in (record.get("artifacts") or {}).items():
        source = Path(str(value))
        if source.is_file():
            target = directory / source.name
            shutil.copy2(source, target)
            written.append(target)
            artifacts[name] = target.name
    path = directory / "run.json"
    path.write_text(json.dumps(clean_nan({**record, "exported_artifacts": artifacts}),
                               indent=2, default=str) + "\n")
    written.insert(0, path)
    images = store.image_metrics(record["run_id"])
    path = directory / "image_metrics.csv"
    with open(path, "w", newline="") as fh:
        columns = ["split", "subject", "slice"] + sorted(
            {k for row in images for k in row} - {"split", "subject", "slice"})
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in images:
            writer.writerow([json.dumps(clean_nan(row.get(c))) if isinstance(row.get(c), list)
                             else row.get(c) for c in columns])
    written.append(path)
    path = directory / "subject_metrics.json"
    path.write_text(json.dumps(clean_nan(store.subject_metrics(record["run_id"])), indent=2)
                    + "\n")
    written.append(path)
    return written
