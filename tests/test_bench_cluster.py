"""bench on many workers sharing one store: three workers on PostgreSQL, one killed with SIGKILL
mid-entry (every entry completes exactly once, no earlier result lost, the killed run marked);
the submitit launcher (its local executor: a job array of worker processes here); --status;
executor config mistakes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import pytest
from conftest import bench_args
from postgres_schema import fresh_schema, needs_postgres

from jmedbench.claims import Claims
from jmedbench.errors import UserError
from jmedbench.store import Store



def board(store_url: str, config: str, seeds: str):
    from jmedbench.engine.bench import expand_matrix, register_matrix
    from jmedbench.registry import get_registry

    matrix = expand_matrix(get_registry(), "unet", "baseline", "phantom", seeds, "quick",
                           config_file=config)
    claims = Claims(Store(store_url))
    return matrix, claims, register_matrix(matrix, claims)


@needs_postgres
def test_three_workers_one_killed_mid_entry_every_entry_once(tmp_path, tiny_config):
    with fresh_schema() as url:
        args = bench_args(url, tiny_config, "--seeds", "0,1,2,3", "--lease", "3",
                          "--artifacts", str(tmp_path / "artifacts"))
        workers = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True) for _ in range(3)]
        claims = keys = None
        victim, completed_before = None, set()
        try:
            deadline = time.time() + 600
            while victim is None and time.time() < deadline:
                time.sleep(0.3)
                if keys is None:
                    try:
                        _, claims, keys = board(url, tiny_config, "0,1,2,3")
                    except UserError:  # the first worker is still creating the schema
                        continue
                rows = claims.board(keys)
                done = [r for r in rows if r["state"] == "completed"]
                busy = [r for r in rows if r["state"] == "running" and r["run_id"]]
                if done and busy:  # one entry stored, another one's run under way: kill it
                    victim = next(w for w in workers if w.pid == busy[0]["pid"])
                    completed_before = {r["run_id"] for r in done}
                    killed_key, killed_run = busy[0]["matrix_key"], busy[0]["run_id"]
                    os.kill(victim.pid, signal.SIGKILL)
            assert victim is not None, "no entry was ever under way next to a completed one"
            outputs = {}
            for w in workers:
                out, err = w.communicate(timeout=600)
                outputs[w.pid] = (w.returncode, out, err)
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
        assert outputs[victim.pid][0] == -signal.SIGKILL
        for pid, (code, out, err) in outputs.items():
            if pid != victim.pid:
                assert code == 0, err[-2000:]
                entries = json.loads(out)["entries"]
                assert [e["status"] for e in entries] == ["completed"] * 4
        store = Store(url)
        completed = store.runs(status="completed")
        assert sorted(r["matrix_key"] for r in completed) == sorted(keys)  # each exactly once
        assert completed_before <= {r["run_id"] for r in completed}       # none lost
        killed = store.get_run(killed_run)
        assert killed["status"] == "incomplete"
        assert f":{victim.pid} stopped renewing the lease" in killed["error"]
        rows = {r["matrix_key"]: r for r in claims.board(keys)}
        assert all(r["state"] == "completed" for r in rows.values())
        assert rows[killed_key]["attempts"] == 2 and rows[killed_key]["run_id"] != killed_run


def test_submitit_job_array_runs_the_matrix_and_status_shows_it(tmp_path, tiny_config):
    store = tmp_path / "s.sqlite"
    config = tmp_path / "cluster.toml"
    config.write_text(f'[submitit]\njobs = 2\ncluster = "local"\nfolder = "{tmp_path}/logs"\n'
                      'timeout_min = 10\nslurm_partition = "gpu"\n')
    out = subprocess.run(bench_args(store, tiny_config, "--seeds", "0,1", "--executor",
                                    "submitit", "--executor-config", str(config)),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert [e["status"] for e in result["entries"]] == ["completed", "completed"]
    assert result["worker_errors"] == [] and "submitted 2 worker job(s)" in out.stderr
    runs = Store(store).runs(status="completed")
    assert len(runs) == 2 and len({r["matrix_key"] for r in runs}) == 2
    assert all(r["pid"] != os.getpid() for r in runs)

    # --status: one more seed is waiting, one held by this process is running
    matrix, claims, keys = board(str(store), tiny_config, "0,1,2,3")
    held = claims.claim(keys)
    assert held.key == keys[2]
    status = subprocess.run(bench_args(store, tiny_config, "--seeds", "0,1,2,3", "--status"),
                            capture_output=True, text=True, timeout=300)
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["totals"] == {"done": 2, "running": 1, "lost": 0, "failed": 0, "waiting": 1}
    running = shown["entries"][2]
    assert running["state"] == "running"
    assert running["worker"] == f"{socket.gethostname()}:{os.getpid()}"
    assert running["for_s"] >= 0 and shown["entries"][3]["state"] == "waiting"


@needs_postgres
def test_a_database_store_without_a_folder_for_weights_is_refused_before_any_run(tiny_config):
    with fresh_schema() as url:
        out = subprocess.run(bench_args(url, tiny_config, "--seeds", "0"), capture_output=True,
                             text=True, env={k: v for k, v in os.environ.items()
                                             if k != "JMEDBENCH_ARTIFACTS"})
        assert out.returncode == 2, out.stderr
        assert "no folder for run files" in out.stderr and "--no-save-weights" in out.stderr
        assert Store(url).runs() == []


def test_executor_config_mistakes(tmp_path):
    from jmedbench.engine.bench import Matrix, WorkerSpec
    from jmedbench.engine.executors import read_executor_config, submit

    path = tmp_path / "c.toml"
    for text, message in (('[slurm]\njobs = 2\n', "unknown table 'slurm'"),
                          ('[submitit]\njobs = "many"\n', "jobs: expected int"),
                          ('[submitit]\njobs = 0\n', "at least 1"),
                          ('[submitit\n', "not valid TOML")):
        path.write_text(text)
        with pytest.raises(UserError, match=message):
            read_executor_config(str(path))
    with pytest.raises(UserError, match="no such file|No such file"):
        read_executor_config(str(tmp_path / "missing.toml"))
    path.write_text(f'[submitit]\ncluster = "local"\nfolder = "{tmp_path}/l"\nbogus = 1\n')
    spec = WorkerSpec(Matrix([], "quick"), str(tmp_path / "s.sqlite"), None, 1, 60.0, False)
    with pytest.raises(UserError, match="Parameter 'bogus'"):
        submit(spec, read_executor_config(str(path)))
