"""Claims on matrix entries: how any number of ``jmedbench bench`` workers, on one machine or
many, share one matrix through the results store.

Every entry (its ``matrix_key``) has one row in the ``claims`` table: ``waiting``, ``running``
(held by one worker under a lease it renews), ``completed`` or ``failed``. A worker claims the
first waiting entry in one transaction (PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED``;
SQLite: the write lock of ``BEGIN IMMEDIATE``), so no two workers get the same entry. A claim
whose lease has expired (its worker was killed, its node lost) may be taken by any worker,
which marks the run it left behind ``incomplete``; a claim held by a process of this host that
is gone is taken at once. Only the holder of the current claim (its token) can complete it:
the run process completes the claim in the transaction that stores its results
(``Store.finish_run``), so an entry is never completed twice.

Times are on the store's clock (the database server's), so machines whose clocks differ agree
on when a lease ends.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterable

import sqlalchemy as sa

from jmedbench.store import CLAIMS, RUNS, Store, alive

DEFAULT_LEASE = 60.0  # seconds; renewed every lease / 3
FINAL = ("completed", "failed")


@dataclass(frozen=True)
class Claim:
    key: str
    token: str
    label: str
    attempts: int
    taken_from: str | None = None  # "host:pid" of the worker whose expired claim this took


class Claims:
    """The claims of one worker process (``host``:``pid``) on one store."""

    def __init__(self, store: Store, *, lease: float = DEFAULT_LEASE) -> None:
        if lease <= 0:
            raise ValueError("lease must be positive")
        self.store = store
        self.lease = float(lease)
        self.host = socket.gethostname()
        self.pid = os.getpid()

    # -- a matrix ----------------------------------------------------------------------------
    def register(self, entries: Iterable[tuple[str, str]]) -> None:
        """Add the entries (``(matrix_key, label)``, in matrix order) that have no claim yet.
        One with a run stored already (by a version of jmedbench before claims, or ``jmedbench
        run --matrix-key``) starts as that run's outcome: completed, else failed, else waiting."""
        entries = list(entries)
        keys = [key for key, _ in entries]
        with self.store._write() as c:
            known = set(c.execute(sa.select(CLAIMS.c.matrix_key)
                                  .where(CLAIMS.c.matrix_key.in_(keys))).scalars())
            missing = [(i, key, label) for i, (key, label) in enumerate(entries)
                       if key not in known]
            if not missing:
                return
            previous: dict[str, dict[str, Any]] = {}
            for row in c.execute(sa.select(RUNS.c.matrix_key, RUNS.c.status, RUNS.c.run_id,
                                           RUNS.c.error, RUNS.c.finished)
                                 .where(RUNS.c.matrix_key.in_([k for _, k, _ in missing]),
                                        RUNS.c.status.in_(FINAL))
                                 .order_by(RUNS.c.created)):
                best = previous.get(row.matrix_key)
                if best is None or best["state"] != "completed":  # completed wins, else latest
                    previous[row.matrix_key] = {"state": row.status, "run_id": row.run_id,
                                                "error": row.error, "finished": row.finished}
            waiting = {"state": "waiting", "run_id": None, "error": None, "finished": None}
            rows = [{"matrix_key": key, "position": i, "label": label, "attempts": 0,
                     **previous.get(key, waiting)} for i, key, label in missing]
            if self.store.dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            c.execute(insert(CLAIMS).on_conflict_do_nothing(index_elements=["matrix_key"]),
                      rows)

    def retry_failed(self, keys: list[str]) -> int:
        """Failed entries among ``keys`` become waiting again; how many."""
        with self.store._write() as c:
            return c.execute(CLAIMS.update().where(CLAIMS.c.matrix_key.in_(keys),
                                                   CLAIMS.c.state == "failed")
                             .values(state="waiting", token=None, error=None)).rowcount

    # -- one worker --------------------------------------------------------------------------
    def claim(self, keys: list[str]) -> Claim | None:
        """The first claimable entry among ``keys``, now held by this worker; None if none is
        (every one is completed, failed, or held under a live lease)."""
        c_ = CLAIMS.c
        with self.store._write() as c:
            now = self.store.now(c)
            # Held by a process of this host that is gone: its lease ends now.
            for row in c.execute(sa.select(c_.matrix_key, c_.token, c_.pid)
                                 .where(c_.matrix_key.in_(keys), c_.state == "running",
                                        c_.host == self.host, c_.expires >= now)
                                 .order_by(c_.position)).fetchall():  # one lock order for all
                if not alive(self.host, row.pid):
                    c.execute(CLAIMS.update().where(c_.matrix_key == row.matrix_key,
                                                    c_.token == row.token)
                              .values(expires=now))
            row = c.execute(
                sa.select(CLAIMS)
                .where(c_.matrix_key.in_(keys),
                       sa.or_(c_.state == "waiting",
                              sa.and_(c_.state == "running", c_.expires <= now)))
                .order_by(c_.position, c_.matrix_key).limit(1)
                .with_for_update(skip_locked=True)).first()
            if row is None:
                return None
            taken_from = None
            if row.state == "running":  # an expired lease: its run never finished
                taken_from = f"{row.host}:{row.pid}"
                if row.run_id:
                    c.execute(RUNS.update().where(RUNS.c.run_id == row.run_id,
                                                  RUNS.c.status == "running").values(
                        status="incomplete", finished=time.time(),
                        error=f"its worker {taken_from} stopped renewing the lease (killed, "
                              f"or its node lost); the entry was taken over by "
                              f"{self.host}:{self.pid}"))
            token = uuid.uuid4().hex
            c.execute(CLAIMS.update().where(c_.matrix_key == row.matrix_key).values(
                state="running", token=token, host=self.host, pid=self.pid, run_id=None,
                claimed=now, heartbeat=now, expires=now + self.lease, finished=None,
                attempts=row.attempts + 1, error=None))
        return Claim(row.matrix_key, token, row.label, row.attempts + 1, taken_from)

    def heartbeat(self, tokens: list[str]) -> set[str]:
        """Renew the leases of the claims held; return the tokens no longer held."""
        if not tokens:
            return set()
        with self.store._write() as c:
            now = self.store.now(c)
            c.execute(CLAIMS.update().where(CLAIMS.c.token.in_(tokens),
                                            CLAIMS.c.state == "running")
                      .values(heartbeat=now, expires=now + self.lease))
            held = set(c.execute(sa.select(CLAIMS.c.token).where(
                CLAIMS.c.token.in_(tokens), CLAIMS.c.state == "running")).scalars())
        return set(tokens) - held

    def finish(self, token: str, state: str, run_id: str | None = None,
               error: str | None = None) -> str:
        """Settle a claim this worker holds as ``state`` (completed | failed) unless its run
        settled it already. Returns the claim's state now, or ``lost`` when another worker
        has taken the entry over."""
        assert state in FINAL
        with self.store._write() as c:
            row = c.execute(sa.select(CLAIMS.c.state).where(CLAIMS.c.token == token)
                            .with_for_update()).first()
            if row is None:
                return "lost"
            if row.state != "running":
                return row.state
            c.execute(CLAIMS.update().where(CLAIMS.c.token == token).values(
                state=state, run_id=run_id, finished=self.store.now(c),
                error=error.splitlines()[0] if error else None))
        return state

    def held(self, token: str) -> dict[str, Any] | None:
        """The claim with this token (None: taken over by another worker)."""
        with self.store._read() as c:
            row = c.execute(sa.select(CLAIMS).where(CLAIMS.c.token == token)).first()
        return dict(row._mapping) if row else None

    # -- reading -----------------------------------------------------------------------------
    def board(self, keys: list[str]) -> list[dict[str, Any]]:
        """Every entry's claim, in ``keys`` order, with ``now`` (store clock) and ``shown``:
        the state a person reads (``expired`` for a running claim whose worker is gone or
        whose lease ran out: waiting for a worker to take it over; ``waiting`` for an entry
        not registered yet)."""
        with self.store._read() as c:
            now = self.store.now(c)
            rows = {r.matrix_key: dict(r._mapping) for r in c.execute(
                sa.select(CLAIMS).where(CLAIMS.c.matrix_key.in_(keys)))}
        out = []
        for key in keys:
            row = rows.get(key) or {"matrix_key": key, "state": "waiting", "attempts": 0}
            shown = row["state"]
            if shown == "running" and (row["expires"] <= now or
                                       (row["host"] == self.host
                                        and not alive(row["host"], row["pid"]))):
                shown = "expired"
            out.append({**row, "shown": shown, "now": now})
        return out
