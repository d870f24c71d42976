"""Store: round trip, failed runs, unknown ids, an unwritable path, and a run killed with -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from jmedbench.errors import UserError
from jmedbench.store import Store


def test_round_trip(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    run_id = store.begin_run({"model": "unet", "seed": 3}, {"versions": {"torch": "x"}})
    assert store.get_run(run_id)["status"] == "running"
    store.finish_run(run_id, metrics={"dice": 0.9, "hd": float("nan")}, timings={"train": 1.5},
                     details={"k": [1, 2]}, image_rows=[("test", "s1", 0, {"dice": [1.0, float("nan"), 0.5]})])
    record = Store(tmp_path / "s.sqlite").get_run(run_id[:12])  # a fresh connection, a prefix
    assert record["status"] == "completed"
    assert record["metrics"] == {"dice": 0.9, "hd": None}
    assert record["config"]["seed"] == 3 and record["timings"] == {"train": 1.5}
    assert store.image_metrics(run_id) == [{"split": "test", "subject": "s1", "slice": 0,
                                            "dice": [1.0, None, 0.5]}]
    assert sqlite3.connect(tmp_path / "s.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_failed_run_keeps_its_error(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    run_id = store.begin_run({"model": "unet"}, {})
    store.fail_run(run_id, "RuntimeError: out of memory")
    record = store.get_run(run_id)
    assert record["status"] == "failed" and "out of memory" in record["error"]


def test_unknown_run_id(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    with pytest.raises(UserError, match="not found .*store is empty"):
        store.get_run("nope")


def test_unwritable_store_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot open"):
        Store(blocker / "sub" / "s.sqlite")


def test_run_killed_with_sigkill_leaves_earlier_runs_and_shows_incomplete(tmp_path):
    path = tmp_path / "s.sqlite"
    store = Store(path)
    done = store.begin_run({"model": "unet"}, {})
    store.finish_run(done, metrics={"dice": 0.5}, timings={}, details={}, image_rows=[])
    proc = subprocess.Popen([sys.executable, "-m", "jmedbench", "run", "--model", "unet",
                             "--strategy", "baseline", "--profile", "quick", "--steps", "100000",
                             "--store", str(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if len(store.runs()) == 2:
                break
            time.sleep(0.2)
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    runs = {r["run_id"]: r for r in Store(path).runs()}
    assert runs[done]["status"] == "completed" and runs[done]["metrics"] == {"dice": 0.5}
    killed = [r for r in runs.values() if r["run_id"] != done]
    assert len(killed) == 1 and killed[0]["status"] == "incomplete"


def test_subject_rows_artifacts_and_delete(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    run_id = store.begin_run({"model": "unet"}, {})
    store.finish_run(run_id, metrics={}, timings={}, details={},
                     image_rows=[("test", "s1", 0, {"dice": [1.0]})],
                     subject_rows=[("test", "s1", {"dice_3d": [0.5, float("nan")]}),
                                   ("test", "s0", {"dice_3d": [0.25, 1.0]})])
    assert store.subject_metrics(run_id) == [
        {"split": "test", "subject": "s0", "dice_3d": [0.25, 1.0]},
        {"split": "test", "subject": "s1", "dice_3d": [0.5, None]}]
    store.set_artifacts(run_id, {"weights": "a/model.safetensors"})
    store.set_artifacts(run_id, {"figure": "a/fig.png"})
    assert store.get_run(run_id)["artifacts"] == {"weights": "a/model.safetensors",
                                                   "figure": "a/fig.png"}
    store.delete_run(run_id)
    assert store.runs() == [] and store.subject_metrics(run_id) == []
    assert store.image_metrics(run_id) == []


def test_a_store_written_before_artifacts_existed_opens(tmp_path):
    import sqlite3
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript("""CREATE TABLE runs (run_id TEXT PRIMARY KEY, created REAL NOT NULL,
        finished REAL, status TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'run', model TEXT,
        strategy TEXT, dataset TEXT, profile TEXT, seed INTEGER, backend TEXT,
        config TEXT NOT NULL, provenance TEXT NOT NULL, timings TEXT, metrics TEXT,
        details TEXT, error TEXT, host TEXT, pid INTEGER, matrix_key TEXT);
        INSERT INTO runs (run_id, created, status, config, provenance)
        VALUES ('r1', 0, 'failed', '{}', '{}');""")
    old.commit()
    old.close()
    store = Store(path)
    assert store.get_run("r1")["artifacts"] is None
    store.set_artifacts("r1", {"weights": "w"})
    assert store.get_run("r1")["artifacts"] == {"weights": "w"}


def test_artifacts_folder_beside_the_store_or_where_given(tmp_path):
    store = Store(tmp_path / "results.sqlite")
    assert store.artifacts_dir("r1") == tmp_path / "results-artifacts" / "r1"
    assert (tmp_path / "results-artifacts" / "r1").is_dir()
    elsewhere = Store(tmp_path / "s.sqlite", artifacts=tmp_path / "shared")
    assert elsewhere.artifacts_dir("r2") == tmp_path / "shared" / "r2"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="artifacts folder .*cannot create"):
        Store(tmp_path / "t.sqlite", artifacts=blocker).artifacts_dir("r3")
