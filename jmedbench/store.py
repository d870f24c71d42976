"""The results store: one SQLite file (stdlib), WAL mode, one row per run plus its per-image
metrics. A run is written as ``running`` when it starts and completed in one transaction when it
ends, so a process killed at any point leaves earlier runs intact and itself visibly incomplete.

Default location: ``$JMEDBENCH_STORE`` if set, else
``${XDG_DATA_HOME:-~/.local/share}/jmedbench/results.sqlite``; ``--store PATH`` overrides both.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from jmedbench.errors import UserError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    created     REAL NOT NULL,
    finished    REAL,
    status      TEXT NOT NULL,          -- running | completed | failed
    kind        TEXT NOT NULL DEFAULT 'run',
    model       TEXT, strategy TEXT, dataset TEXT, profile TEXT, seed INTEGER, backend TEXT,
    config      TEXT NOT NULL,          -- JSON: the resolved RunConfig
    provenance  TEXT NOT NULL,          -- JSON: versions, git commit, host, pid
    timings     TEXT,                   -- JSON: seconds per stage
    metrics     TEXT,                   -- JSON: aggregated metrics
    details     TEXT,                   -- JSON: robustness tables, density, budgets, profile
    error       TEXT,
    host        TEXT, pid INTEGER,
    matrix_key  TEXT,                   -- identifies a matrix entry for resuming `bench`
    artifacts   TEXT                    -- JSON: {"weights": path, ...} files the run wrote
);
CREATE TABLE IF NOT EXISTS image_metrics (
    run_id   TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    split    TEXT NOT NULL,
    subject  TEXT NOT NULL,
    slice    INTEGER NOT NULL,
    values_json TEXT NOT NULL,          -- {"dice": [per class], "iou": [...]} (NaN as null)
    PRIMARY KEY (run_id, split, subject, slice)
);
CREATE TABLE IF NOT EXISTS subject_metrics (
    run_id   TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    split    TEXT NOT NULL,                 -- test | shift | an --eval-dataset prefix
    subject  TEXT NOT NULL,
    values_json TEXT NOT NULL,          -- {"dice_3d": [per class], "bmd_error": x, ...}
    PRIMARY KEY (run_id, split, subject)
);
CREATE INDEX IF NOT EXISTS runs_by_entry ON runs(model, strategy, dataset, profile);
CREATE INDEX IF NOT EXISTS runs_by_matrix ON runs(matrix_key);
"""


def default_store_path() -> Path:
    env = os.environ.get("JMEDBENCH_STORE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "jmedbench" / "results.sqlite"


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, allow_nan=False)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def clean_nan(value: Any) -> Any:
    """NaN/inf -> None recursively (JSON has no NaN); numpy scalars -> Python numbers."""
    if isinstance(value, dict):
        return {k: clean_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_nan(v) for v in value]
    if hasattr(value, "item") and not hasattr(value, "__len__"):
        value = value.item()
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


class Store:
    """Results of runs in one SQLite file."""

    def __init__(self, path: str | Path | None = None, *,
                 artifacts: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_store_path()
        # Files runs write (trained weights, figures): one folder per run under this root,
        # beside the store unless given (results.sqlite -> results-artifacts/RUN_ID/).
        self.artifacts_root = (Path(artifacts) if artifacts
                               else self.path.with_name(self.path.stem + "-artifacts"))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
            self.conn.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise UserError(f"store {self.path}: cannot open for writing ({exc})") from None
        self.conn.row_factory = sqlite3.Row

    def _migrate(self) -> None:
        """Bring a store written by an older version up to this schema (columns added since)."""
        columns = {r[1] for r in self.conn.execute("PRAGMA table_info(runs)")}
        if columns and "artifacts" not in columns:
            self.conn.execute("ALTER TABLE runs ADD COLUMN artifacts TEXT")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    # -- writing -----------------------------------------------------------------------------
    def begin_run(self, config: dict[str, Any], provenance: dict[str, Any], *,
                  kind: str = "run", matrix_key: str | None = None) -> str:
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        with self.transaction() as c:
            c.execute(
                "INSERT INTO runs (run_id, created, status, kind, model, strategy, dataset, "
                "profile, seed, backend, config, provenance, host, pid, matrix_key) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, time.time(), kind, config.get("model"), config.get("strategy"),
                 config.get("dataset"), config.get("profile"), config.get("seed"),
                 config.get("backend"), _dumps(config), _dumps(clean_nan(provenance)),
                 socket.gethostname(), os.getpid(), matrix_key))
        return run_id

    def finish_run(self, run_id: str, *, metrics: dict[str, Any], timings: dict[str, float],
                   details: dict[str, Any], image_rows: list[tuple[str, str, int, dict]],
                   subject_rows: list[tuple[str, str, dict]] = ()) -> None:
        """Store everything a run computed, atomically, and mark it completed.

        ``image_rows``: (split, subject, slice, values); ``subject_rows``: (split, subject,
        values), the per-subject scores that rankings and tests are computed over."""
        with self.transaction() as c:
            c.executemany(
                "INSERT OR REPLACE INTO subject_metrics VALUES (?, ?, ?, ?)",
                [(run_id, split, subject, _dumps(clean_nan(values)))
                 for split, subject, values in subject_rows])
            c.executemany(
                "INSERT OR REPLACE INTO image_metrics VALUES (?, ?, ?, ?, ?)",
                [(run_id, split, subject, int(idx), _dumps(clean_nan(values)))
                 for split, subject, idx, values in image_rows])
            c.execute(
                "UPDATE runs SET status='completed', finished=?, metrics=?, timings=?, "
                "details=? WHERE run_id=?",
                (time.time(), _dumps(clean_nan(metrics)), _dumps(clean_nan(timings)),
                 _dumps(clean_nan(details)), run_id))

    def fail_run(self, run_id: str, error: str, timings: dict[str, float] | None = None) -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET status='failed', finished=?, error=?, timings=? "
                      "WHERE run_id=?", (time.time(), error, _dumps(clean_nan(timings or {})),
                                         run_id))

    def artifacts_dir(self, run_id: str) -> Path:
        """The folder for one run's files (created)."""
        folder = self.artifacts_root / run_id
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"artifacts folder {folder}: cannot create ({exc})") from None
        return folder

    def set_artifacts(self, run_id: str, artifacts: dict[str, Any]) -> None:
        """Record files a run wrote (merged into what is recorded already)."""
        with self.transaction() as c:
            row = c.execute("SELECT artifacts FROM runs WHERE run_id=?", (run_id,)).fetchone()
            merged = {**(json.loads(row[0]) if row and row[0] else {}), **artifacts}
            c.execute("UPDATE runs SET artifacts=? WHERE run_id=?",
                      (_dumps(clean_nan(merged)), run_id))

    def delete_run(self, run_id: str) -> None:
        """Remove a run and its image and subject rows (its files are the caller's)."""
        with self.transaction() as c:
            c.execute("DELETE FROM runs WHERE run_id=?", (run_id,))

    # -- reading -----------------------------------------------------------------------------
    def get_run(self, run_id: str) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            matches = self.conn.execute("SELECT * FROM runs WHERE run_id LIKE ?",
                                        (run_id + "%",)).fetchall()
            if len(matches) == 1:
                row = matches[0]
            else:
                recent = [r["run_id"] for r in self.conn.execute(
                    "SELECT run_id FROM runs ORDER BY created DESC LIMIT 3")]
                hint = f" (recent: {', '.join(recent)})" if recent else " (the store is empty)"
                what = "is ambiguous" if matches else "not found"
                raise UserError(f"run id '{run_id}' {what} in store {self.path}{hint}")
        return self._record(row)

    def image_metrics(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT split, subject, slice, values_json FROM image_metrics WHERE run_id=? "
            "ORDER BY split, subject, slice", (run_id,)).fetchall()
        return [{"split": r["split"], "subject": r["subject"], "slice": r["slice"],
                 **json.loads(r["values_json"])} for r in rows]

    def subject_metrics(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT split, subject, values_json FROM subject_metrics WHERE run_id=? "
            "ORDER BY split, subject", (run_id,)).fetchall()
        return [{"split": r["split"], "subject": r["subject"], **json.loads(r["values_json"])}
                for r in rows]

    def runs(self, *, status: str | None = None, kind: str | None = None,
             matrix_key: str | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM runs WHERE 1=1", []
        for column, value in (("kind", kind), ("matrix_key", matrix_key)):
            if value is not None:
                query += f" AND {column}=?"
                args.append(value)
        rows = self.conn.execute(query + " ORDER BY created", args).fetchall()
        records = [self._record(r) for r in rows]
        return [r for r in records if status is None or r["status"] == status]

    def _record(self, row: sqlite3.Row) -> dict[str, Any]:
        record = dict(row)
        for key in ("config", "provenance", "timings", "metrics", "details", "artifacts"):
            record[key] = json.loads(record[key]) if record[key] else None
        if record["status"] == "running" and not _alive(record["host"], record["pid"]):
            # The process that owned it is gone (killed, crashed): it never finished.
            record["status"] = "incomplete"
        return record


def _alive(host: str | None, pid: int | None) -> bool:
    if host != socket.gethostname() or not pid:
        return True  # cannot tell from here: trust "running"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process whose parent has not reaped it yet is a zombie: not alive
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True
