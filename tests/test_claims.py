"""Claims on matrix entries, on SQLite and (when JMEDBENCH_TEST_POSTGRES names a server) on
PostgreSQL: workers racing for entries never get the same one, a lease that runs out lets
another worker take the entry over and marks the run left behind, the run of a lost claim is
never counted, and a finished entry is never claimed again."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa
from postgres_schema import store_location  # noqa: F401 (fixture)

from jmedbench.claims import Claims
from jmedbench.store import CLAIM_ENV, CLAIMS, Store

KEYS = [f"unet|baseline|phantom|{seed}" for seed in range(6)]


def registered(location, lease=30.0) -> Claims:
    claims = Claims(Store(location), lease=lease)
    claims.register([(k, f"entry{i}") for i, k in enumerate(KEYS)])
    return claims


def test_claims_come_in_matrix_order_each_once(store_location):
    claims = registered(store_location)
    got = [claims.claim(KEYS) for _ in KEYS]
    assert [c.key for c in got] == KEYS and len({c.token for c in got}) == len(KEYS)
    assert claims.claim(KEYS) is None  # all held under live leases
    assert [r["shown"] for r in claims.board(KEYS)] == ["running"] * len(KEYS)


def test_racing_workers_never_get_the_same_entry(store_location):
    registered(store_location)
    taken: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker():
        try:
            claims = Claims(Store(store_location))  # its own connections, as a process has
            start.wait()
            while (claim := claims.claim(KEYS)) is not None:
                taken.append(claim.key)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(taken) == sorted(KEYS)  # every entry exactly once


def test_an_expired_lease_is_taken_over_and_its_run_never_counts(store_location, monkeypatch):
    lost_node = registered(store_location, lease=2.0)
    first = lost_node.claim(KEYS)
    store = lost_node.store
    with store.transaction() as c:  # the claim is held by a machine that then goes away
        c.execute(CLAIMS.update().where(CLAIMS.c.token == first.token)
                  .values(host="node-07", pid=4242))
    monkeypatch.setenv(CLAIM_ENV, first.token)  # the run process of that claim
    old_run = store.begin_run({"model": "unet"}, {}, matrix_key=first.key)
    monkeypatch.delenv(CLAIM_ENV)

    other = Claims(Store(store_location), lease=30)
    assert other.claim(KEYS[:1]) is None           # the lease still runs
    assert store.get_run(old_run)["status"] == "running"
    time.sleep(2.2)
    assert other.board(KEYS[:1])[0]["shown"] == "expired"
    assert store.get_run(old_run)["status"] == "incomplete"  # every reader sees it so at once
    assert [r["status"] for r in store.runs(matrix_key=first.key)] == ["incomplete"]
    second = other.claim(KEYS[:1])
    assert second.key == first.key and second.attempts == 2
    assert second.taken_from == "node-07:4242"
    record = store.get_run(old_run)
    assert record["status"] == "incomplete"
    assert "node-07:4242 stopped renewing the lease" in record["error"]

    # The old run comes back after all (a partitioned node): stored, but not as the entry's.
    monkeypatch.setenv(CLAIM_ENV, first.token)
    store.finish_run(old_run, metrics={"dice": 0.1}, timings={}, details={}, image_rows=[])
    assert store.get_run(old_run)["status"] == "failed"
    assert "claim was lost" in store.get_run(old_run)["error"]
    assert lost_node.heartbeat([first.token]) == {first.token}
    assert lost_node.finish(first.token, "completed") == "lost"

    monkeypatch.setenv(CLAIM_ENV, second.token)    # the new holder's run completes it, once
    new_run = store.begin_run({"model": "unet"}, {}, matrix_key=second.key)
    store.finish_run(new_run, metrics={"dice": 0.9}, timings={}, details={}, image_rows=[])
    monkeypatch.delenv(CLAIM_ENV)
    row = other.board(KEYS[:1])[0]
    assert (row["state"], row["run_id"]) == ("completed", new_run)
    assert other.finish(second.token, "failed") == "completed"  # settled already: unchanged
    assert other.claim(KEYS[:1]) is None
    assert [r["run_id"] for r in store.runs(matrix_key=first.key, status="completed")] == [new_run]


def test_a_claim_of_a_dead_local_process_is_free_at_once(store_location):
    claims = registered(store_location, lease=3600)
    first = claims.claim(KEYS)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with claims.store.transaction() as c:
        c.execute(CLAIMS.update().where(CLAIMS.c.token == first.token).values(pid=gone.pid))
    again = claims.claim(KEYS)
    assert again.key == first.key and again.taken_from == f"{claims.host}:{gone.pid}"


def test_heartbeats_keep_a_claim_and_failed_entries_can_be_retried(store_location):
    claims = registered(store_location, lease=2.0)
    held = claims.claim(KEYS[:1])
    rival = Claims(Store(store_location), lease=2.0)
    for _ in range(3):
        time.sleep(0.7)
        assert claims.heartbeat([held.token]) == set()
    assert rival.claim(KEYS[:1]) is None  # 2.1 s after the claim, renewed all along
    assert claims.finish(held.token, "failed", error="RuntimeError: boom\nmore") == "failed"
    assert rival.board(KEYS[:1])[0]["error"] == "RuntimeError: boom"
    assert rival.claim(KEYS[:1]) is None
    assert rival.retry_failed(KEYS) == 1
    assert rival.claim(KEYS[:1]).attempts == 2


def test_entries_start_from_runs_stored_before_claims_and_deletion_frees_them(store_location):
    store = Store(store_location)
    done = store.begin_run({"model": "unet"}, {}, matrix_key=KEYS[0])
    store.finish_run(done, metrics={}, timings={}, details={}, image_rows=[])
    broken = store.begin_run({"model": "unet"}, {}, matrix_key=KEYS[1])
    store.fail_run(broken, "boom")
    claims = registered(store_location)
    states = [(r["state"], r.get("run_id")) for r in claims.board(KEYS[:3])]
    assert states == [("completed", done), ("failed", broken), ("waiting", None)]
    assert claims.claim(KEYS).key == KEYS[2]
    store.delete_run(done)  # the runs browser deleted it: the entry runs again
    assert claims.claim(KEYS).key == KEYS[0]
    with store.transaction() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(CLAIMS)).scalar() == len(KEYS)


def test_lease_must_be_positive(tmp_path):
    with pytest.raises(ValueError):
        Claims(Store(tmp_path / "s.sqlite"), lease=0)
