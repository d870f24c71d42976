"""Store: round trip, failed runs, unknown ids, an unwritable path, a run killed with -9; the
same API on PostgreSQL (a fresh schema per test, when JMEDBENCH_TEST_POSTGRES names a server);
store URLs and their mistakes; schema migrations from every older store, and a newer one."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from postgres_schema import fresh_schema, needs_postgres, store_location  # noqa: F401 (fixture)

from jmedbench.errors import UserError
from jmedbench.store import SCHEMA_HEAD, SCHEMA_REVISIONS, Store


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


def test_subject_rows_artifacts_and_delete(store_location):
    store = Store(store_location)
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


def test_round_trip_on_every_backend(store_location):
    store = Store(store_location)
    first = store.begin_run({"model": "unet", "seed": 3}, {"versions": {"torch": "x"}},
                            kind="bench", matrix_key="k1")
    other = store.begin_run({"model": "segnet"}, {})
    store.finish_run(first, metrics={"dice": 0.9, "hd": float("nan")}, timings={"train": 1.5},
                     details={"k": [1, 2]},
                     image_rows=[("test", "s1", 1, {"dice": [0.5]}),
                                 ("test", "s1", 0, {"dice": [1.0, float("nan")]})])
    store.fail_run(other, "RuntimeError: boom")
    again = Store(store_location)  # a fresh connection, the schema already in place
    record = again.get_run(first)
    assert record["status"] == "completed" and record["kind"] == "bench"
    assert record["metrics"] == {"dice": 0.9, "hd": None} and record["config"]["seed"] == 3
    assert again.image_metrics(first) == [
        {"split": "test", "subject": "s1", "slice": 0, "dice": [1.0, None]},
        {"split": "test", "subject": "s1", "slice": 1, "dice": [0.5]}]
    assert [r["run_id"] for r in again.runs(matrix_key="k1")] == [first]
    assert [r["run_id"] for r in again.runs(status="failed")] == [other]
    assert again.get_run(other)["error"] == "RuntimeError: boom"
    with pytest.raises(UserError, match="not found .*recent: "):
        again.get_run("19990101")


def test_a_url_is_never_taken_for_a_path(cli, tmp_path):
    """The bug of issue 20: a PostgreSQL URL became a folder 'postgresql:' and an SQLite file."""
    out = subprocess.run([sys.executable, "-m", "jmedbench", "bench", "--models", "unet",
                          "--store", "postgresql://user:secret@127.0.0.1:1/db"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "store postgresql://user:***@127.0.0.1:1/db: cannot connect" in out.stderr
    assert "secret" not in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no folder, no SQLite file


def test_store_urls(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/u.sqlite")
    assert store.path == tmp_path / "u.sqlite" and store.path.exists()
    for url, message in (("mysql://u:pw@h/db", "unsupported database 'mysql'"),
                         ("sqlite://", "in-memory"),
                         ("postgresql://u:pw@h:notaport/db", "not a valid URL")):
        with pytest.raises(UserError, match=message) as caught:
            Store(url)
        assert "pw" not in str(caught.value)


def test_postgresql_without_its_driver_is_one_line():
    code = ("import sys; sys.modules['psycopg'] = None\n"  # as if never installed
            "from jmedbench.store import Store\n"
            "Store('postgresql://u:pw@127.0.0.1:1/db')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0
    assert ("UserError: store postgresql://u:***@127.0.0.1:1/db: the PostgreSQL driver "
            "(psycopg 3) is not installed: pip install 'jmedbench[scale]'") in out.stderr


def test_a_store_of_a_newer_schema_is_refused(store_location):
    import sqlalchemy as sa

    store = Store(store_location)
    with store.transaction() as c:
        c.execute(sa.text("UPDATE alembic_version SET version_num = '9001'"))
    with pytest.raises(UserError, match=r"written by a newer jmedbench \(schema 9001; this "
                                        rf"version knows up to {SCHEMA_HEAD}\): upgrade"):
        Store(store_location)


def test_schema_revisions_match_the_migrations_folder():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", "jmedbench:store_migrations")
    script = ScriptDirectory.from_config(config)
    chain = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    assert tuple(chain) == SCHEMA_REVISIONS and script.get_current_head() == SCHEMA_HEAD


def _tables(engine) -> dict[str, set[str]]:
    import sqlalchemy as sa

    inspector = sa.inspect(engine)
    return {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}


def test_every_older_store_migrates_to_the_schema_of_a_new_one(tmp_path):
    import sqlalchemy as sa

    from jmedbench.store import metadata

    new = Store(tmp_path / "new.sqlite")
    expected = {t.name: {c.name for c in t.columns} for t in metadata.sorted_tables}
    assert _tables(new.engine) == {**expected, "alembic_version": {"version_num"}}
    # the schema before alembic (this commit's parent): runs with artifacts, subject_metrics
    current = tmp_path / "current.sqlite"
    con = sqlite3.connect(current)
    con.executescript("""CREATE TABLE runs (run_id TEXT PRIMARY KEY, created REAL NOT NULL,
        finished REAL, status TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'run', model TEXT,
        strategy TEXT, dataset TEXT, profile TEXT, seed INTEGER, backend TEXT,
        config TEXT NOT NULL, provenance TEXT NOT NULL, timings TEXT, metrics TEXT,
        details TEXT, error TEXT, host TEXT, pid INTEGER, matrix_key TEXT, artifacts TEXT);
        CREATE TABLE image_metrics (run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE
        CASCADE, split TEXT NOT NULL, subject TEXT NOT NULL, slice INTEGER NOT NULL,
        values_json TEXT NOT NULL, PRIMARY KEY (run_id, split, subject, slice));
        CREATE TABLE subject_metrics (run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE
        CASCADE, split TEXT NOT NULL, subject TEXT NOT NULL, values_json TEXT NOT NULL,
        PRIMARY KEY (run_id, split, subject));
        INSERT INTO runs (run_id, created, status, config, provenance, metrics, artifacts)
        VALUES ('r1', 0, 'completed', '{}', '{}', '{"dice": 0.5}', '{"weights": "w"}');
        INSERT INTO image_metrics VALUES ('r1', 'test', 's', 0, '{"dice": [0.5]}');""")
    con.commit()
    con.close()
    store = Store(current)
    assert _tables(store.engine) == {**expected, "alembic_version": {"version_num"}}
    record = store.get_run("r1")
    assert record["metrics"] == {"dice": 0.5} and record["artifacts"] == {"weights": "w"}
    assert store.image_metrics("r1") == [{"split": "test", "subject": "s", "slice": 0,
                                          "dice": [0.5]}]
    with store.engine.connect() as c:
        assert c.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_HEAD
    store.delete_run("r1")  # the foreign keys still cascade
    assert store.image_metrics("r1") == []


def test_artifacts_root_from_the_environment_and_never_a_url(tmp_path, monkeypatch):
    monkeypatch.setenv("JMEDBENCH_ARTIFACTS", str(tmp_path / "env"))
    assert Store(tmp_path / "s.sqlite").artifacts_dir("r1") == tmp_path / "env" / "r1"
    assert Store(tmp_path / "s.sqlite", artifacts=tmp_path / "x").artifacts_root == tmp_path / "x"
    with pytest.raises(UserError, match="--artifacts s3://bucket/x: a URL"):
        Store(tmp_path / "s.sqlite", artifacts="s3://bucket/x")


@needs_postgres
def test_artifacts_on_postgresql_come_from_the_option(tmp_path):
    with fresh_schema() as url:
        with pytest.raises(UserError, match=r"store postgresql://jmedbench:\*\*\*@.*: no folder "
                                            "for run files .*give --artifacts DIR"):
            Store(url).artifacts_dir("r1")
        assert Store(url, artifacts=tmp_path / "a").artifacts_dir("r1") == tmp_path / "a" / "r1"
