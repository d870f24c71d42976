"""The results store: one row per run plus its per-image and per-subject metrics, behind an
SQLAlchemy URL. A run is written as ``running`` when it starts and completed in one
transaction when it ends, so a process killed at any point leaves earlier runs intact and
itself visibly incomplete.

Where: ``--store PATH`` (an SQLite file, WAL mode), ``sqlite:///PATH``, or
``postgresql://user:password@host:5432/db`` (many machines, ``pip install 'jmedbench[scale]'``).
Default: ``$JMEDBENCH_STORE`` (a path or a URL) if set, else
``${XDG_DATA_HOME:-~/.local/share}/jmedbench/results.sqlite``.

The schema is versioned with Alembic (``jmedbench/store_migrations``): opening a store brings
an older one up to date (stores written before the version table existed included) and refuses
one written by a newer jmedbench. The ``claims`` table is how ``jmedbench bench`` workers on
many machines share a matrix (``jmedbench.claims``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from jmedbench.errors import UserError

# Alembic revisions in jmedbench/store_migrations/versions, oldest first (tests check the two
# agree). A store at the last one opens without Alembic being imported.
SCHEMA_REVISIONS = ("0001", "0002", "0003")
SCHEMA_HEAD = SCHEMA_REVISIONS[-1]

# Set by `jmedbench bench` for the run process it starts: the token of the claim the run is
# made under. begin_run records the run on the claim; finish_run completes the claim in the
# same transaction, or, when the claim was lost (its lease expired and another worker took
# the entry), stores the run as failed so that no entry is ever completed twice.
CLAIM_ENV = "JMEDBENCH_CLAIM"
ARTIFACTS_ENV = "JMEDBENCH_ARTIFACTS"

metadata = sa.MetaData()
RUNS = sa.Table(
    "runs", metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("finished", sa.Float),
    sa.Column("status", sa.Text, nullable=False),  # running | completed | failed | incomplete
    sa.Column("kind", sa.Text, nullable=False, server_default="run"),
    sa.Column("model", sa.Text), sa.Column("strategy", sa.Text), sa.Column("dataset", sa.Text),
    sa.Column("profile", sa.Text), sa.Column("seed", sa.Integer), sa.Column("backend", sa.Text),
    sa.Column("config", sa.Text, nullable=False),      # JSON: the resolved RunConfig
    sa.Column("provenance", sa.Text, nullable=False),  # JSON: versions, git commit, host, pid
    sa.Column("timings", sa.Text),                     # JSON: seconds per stage
    sa.Column("metrics", sa.Text),                     # JSON: aggregated metrics
    sa.Column("details", sa.Text),                     # JSON: robustness, density, budgets
    sa.Column("error", sa.Text),
    sa.Column("host", sa.Text), sa.Column("pid", sa.Integer),
    sa.Column("matrix_key", sa.Text),                  # a matrix entry, for resuming `bench`
    sa.Column("artifacts", sa.Text),                   # JSON: {"weights": path, ...}
)
IMAGE_METRICS = sa.Table(
    "image_metrics", metadata,
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("split", sa.Text, primary_key=True),
    sa.Column("subject", sa.Text, primary_key=True),
    sa.Column("slice", sa.Integer, primary_key=True),
    sa.Column("values_json", sa.Text, nullable=False),  # {"dice": [per class], ...} NaN: null
)
SUBJECT_METRICS = sa.Table(
    "subject_metrics", metadata,
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("split", sa.Text, primary_key=True),      # test | shift | an --eval-dataset prefix
    sa.Column("subject", sa.Text, primary_key=True),
    sa.Column("values_json", sa.Text, nullable=False),  # {"dice_3d": [per class], ...}
)
CLAIMS = sa.Table(
    "claims", metadata,
    sa.Column("matrix_key", sa.Text, primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),  # waiting | running | completed | failed
    sa.Column("token", sa.Text),
    sa.Column("host", sa.Text), sa.Column("pid", sa.Integer),
    sa.Column("run_id", sa.Text),
    sa.Column("claimed", sa.Float), sa.Column("heartbeat", sa.Float),
    sa.Column("expires", sa.Float), sa.Column("finished", sa.Float),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.Text),
)
_JSON_FIELDS = ("config", "provenance", "timings", "metrics", "details", "artifacts")
# Any "scheme:" prefix (two letters at least) is a URL, never a folder name.
_URL_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:")
_POSTGRES_SCHEMES = ("postgresql", "postgres")
_SCHEMA_LOCK = 0x6A6D6462  # pg_advisory_xact_lock key: workers opening a new store at once


def default_store_path() -> Path:
    env = os.environ.get("JMEDBENCH_STORE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "jmedbench" / "results.sqlite"


def default_store_location() -> str | Path:
    """``$JMEDBENCH_STORE`` as given when it is a URL (a server's password stays out of every
    command line that way: ``ps`` shows command lines to every user), else the default path."""
    env = os.environ.get("JMEDBENCH_STORE")
    return env if env and is_url(env) else default_store_path()


def mask_url(text: str) -> str:
    """A store URL fit to print: the password replaced by ``***``."""
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", str(text))


def is_url(location: str | Path) -> bool:
    return isinstance(location, str) and bool(_URL_PREFIX.match(location))


def store_exists(path_or_url: str | Path | None) -> bool:
    """Whether opening would find a store rather than create one (a database server: always
    true here; opening reports a server that cannot be reached)."""
    location = path_or_url or default_store_location()
    if not is_url(str(location)):
        return Path(location).exists()
    url = _parse_url(str(location))
    return url.get_backend_name() != "sqlite" or Path(url.database or "").exists()


def _parse_url(location: str) -> sa.URL:
    shown = mask_url(location)
    try:
        url = make_url(location)
    except (ArgumentError, ValueError):
        raise UserError(f"--store {shown}: not a valid URL (expected a path, sqlite:///PATH or "
                        "postgresql://user:password@host:5432/db)") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise UserError(f"--store {shown}: an in-memory SQLite store keeps nothing; give a "
                            "file, sqlite:///PATH")
        return url
    if backend in _POSTGRES_SCHEMES:
        # SQLAlchemy's own default driver for postgresql:// is psycopg2; jmedbench[scale]
        # installs psycopg 3, so a URL without a driver uses it.
        return url.set(drivername="postgresql+psycopg") if "+" not in url.drivername else url
    raise UserError(f"--store {shown}: unsupported database '{url.drivername}' (use a path, "
                    "sqlite:///PATH or postgresql://user:password@host:5432/db)")


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
    """Results of runs in an SQLite file or a PostgreSQL database.

    ``path``: the SQLite file (a ``Path``), or for a database server its URL with the password
    masked (a ``str``, for messages); ``url``: the full URL (passed to run processes, never
    printed); ``location``: what messages name."""

    def __init__(self, path_or_url: str | Path | None = None, *,
                 artifacts: str | Path | None = None) -> None:
        location = path_or_url if path_or_url else default_store_location()
        if is_url(str(location)):
            url = _parse_url(str(location))
            self.dialect = url.get_backend_name()
        else:
            url, self.dialect = None, "sqlite"
        if self.dialect == "sqlite":
            self.path: Path | str = Path(url.database) if url is not None else Path(location)
            self.url = str(self.path.absolute())  # as workers elsewhere in the tree reach it
            self.location = str(self.path)
            self.engine = self._sqlite_engine(self.path)
        else:
            self.url = url.render_as_string(hide_password=False)
            self.location = mask_url(str(location))  # as given, less the password
            self.path = self.location
            self.engine = self._server_engine(url)
        self._writer = self.engine.execution_options(jmedbench_write=True)
        self.artifacts_root = self._artifacts_root(artifacts)
        self._open_schema()

    # -- opening -----------------------------------------------------------------------------
    def _sqlite_engine(self, path: Path) -> sa.Engine:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"store {path}: cannot open for writing ({exc})") from None
        engine = sa.create_engine(sa.URL.create("sqlite+pysqlite", database=str(path)),
                                  connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record) -> None:
            dbapi_conn.isolation_level = None  # transactions are ours (BEGIN below)
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the write lock at BEGIN (waiting up to the timeout), so two writers
            # never deadlock upgrading a read lock; readers do not block writers (WAL).
            write = conn.get_execution_options().get("jmedbench_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    def _server_engine(self, url: sa.URL) -> sa.Engine:
        try:
            return sa.create_engine(url, pool_pre_ping=True,
                                    connect_args={"connect_timeout": 10})
        except ImportError:
            raise UserError(f"store {self.location}: the PostgreSQL driver (psycopg 3) is not "
                            "installed: pip install 'jmedbench[scale]'") from None

    def _artifacts_root(self, artifacts: str | Path | None) -> Path | None:
        # Files runs write (trained weights, figures): one folder per run under this root.
        # Given, else $JMEDBENCH_ARTIFACTS, else beside an SQLite store
        # (results.sqlite -> results-artifacts/RUN_ID/); a database server has no "beside".
        given = artifacts or os.environ.get(ARTIFACTS_ENV) or None
        if given is not None:
            if is_url(str(given)):
                raise UserError(f"--artifacts {given}: a URL; give a folder every node reaches "
                                "(a shared mount), as a path")
            return Path(given)
        if self.dialect == "sqlite":
            return self.path.with_name(self.path.stem + "-artifacts")
        return None

    def _open_schema(self) -> None:
        try:
            with self._write() as conn:
                if self.dialect == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"),
                                 {"k": _SCHEMA_LOCK})
                current = self._revision(conn)
                if current != SCHEMA_HEAD:
                    if current is not None and current not in SCHEMA_REVISIONS:
                        raise UserError(
                            f"store {self.location}: written by a newer jmedbench (schema "
                            f"{current}; this version knows up to {SCHEMA_HEAD}): upgrade "
                            "jmedbench (pip install -U jmedbench) on every machine using it")
                    self._migrate(conn, current)
        except UserError:
            self.engine.dispose()
            raise
        except (SQLAlchemyError, OSError) as exc:
            self.engine.dispose()
            if self.dialect == "sqlite":
                raise UserError(f"store {self.location}: cannot open for writing "
                                f"({_first_line(exc)})") from None
            raise UserError(f"store {self.location}: cannot connect ({_first_line(exc)}): "
                            "check the host, port, database, user and password, and that "
                            "the server is up and reachable from here") from None

    def _revision(self, conn: Connection) -> str | None:
        """The schema revision of the store; None for an empty one. Stores written before the
        version table existed are recognised by their columns."""
        inspector = sa.inspect(conn)
        if inspector.has_table("alembic_version"):
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        if not inspector.has_table("runs"):
            return None
        columns = {c["name"] for c in inspector.get_columns("runs")}
        return "0002" if "artifacts" in columns else "0001"

    def _migrate(self, conn: Connection, current: str | None) -> None:
        """Run the Alembic revisions after ``current`` (inside the caller's transaction)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", "jmedbench:store_migrations")
        config.attributes["connection"] = conn
        if current is not None and not sa.inspect(conn).has_table("alembic_version"):
            command.stamp(config, current)  # a store from before the version table
        command.upgrade(config, "head")

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE)."""
        with self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    transaction = _write

    def now(self, conn: Connection) -> float:
        """Seconds since the epoch on the store's clock: the database server's, so that leases
        written by machines with different clocks compare; the local clock for SQLite."""
        if self.dialect == "postgresql":
            return float(conn.execute(
                sa.text("SELECT extract(epoch FROM clock_timestamp())")).scalar())
        return time.time()

    # -- writing -----------------------------------------------------------------------------
    def begin_run(self, config: dict[str, Any], provenance: dict[str, Any], *,
                  kind: str = "run", matrix_key: str | None = None) -> str:
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        token = os.environ.get(CLAIM_ENV) if matrix_key else None
        with self._write() as c:
            c.execute(RUNS.insert().values(
                run_id=run_id, created=time.time(), status="running", kind=kind,
                model=config.get("model"), strategy=config.get("strategy"),
                dataset=config.get("dataset"), profile=config.get("profile"),
                seed=config.get("seed"), backend=config.get("backend"),
                config=_dumps(config), provenance=_dumps(clean_nan(provenance)),
                host=socket.gethostname(), pid=os.getpid(), matrix_key=matrix_key))
            if token:
                c.execute(CLAIMS.update().where(CLAIMS.c.token == token,
                                                CLAIMS.c.state == "running")
                          .values(run_id=run_id))
        return run_id

    def finish_run(self, run_id: str, *, metrics: dict[str, Any], timings: dict[str, float],
                   details: dict[str, Any], image_rows: list[tuple[str, str, int, dict]],
                   subject_rows: list[tuple[str, str, dict]] = ()) -> None:
        """Store everything a run computed, atomically, and mark it completed.

        ``image_rows``: (split, subject, slice, values); ``subject_rows``: (split, subject,
        values), the per-subject scores that rankings and tests are computed over. A run made
        under a claim that another worker has taken over since is stored as failed."""
        with self._write() as c:
            self._upsert(c, SUBJECT_METRICS, ["run_id", "split", "subject"],
                         [{"run_id": run_id, "split": split, "subject": subject,
                           "values_json": _dumps(clean_nan(values))}
                          for split, subject, values in subject_rows])
            self._upsert(c, IMAGE_METRICS, ["run_id", "split", "subject", "slice"],
                         [{"run_id": run_id, "split": split, "subject": subject,
                           "slice": int(idx), "values_json": _dumps(clean_nan(values))}
                          for split, subject, idx, values in image_rows])
            status, error = "completed", None
            if not self._settle_claim(c, run_id, "completed", None):
                status, error = "failed", (
                    "the entry's claim was lost (its lease expired, another worker took the "
                    "entry over): this result is not counted")
            c.execute(RUNS.update().where(RUNS.c.run_id == run_id).values(
                status=status, error=error, finished=time.time(),
                metrics=_dumps(clean_nan(metrics)), timings=_dumps(clean_nan(timings)),
                details=_dumps(clean_nan(details))))

    def fail_run(self, run_id: str, error: str, timings: dict[str, float] | None = None) -> None:
        with self._write() as c:
            self._settle_claim(c, run_id, "failed", error)
            c.execute(RUNS.update().where(RUNS.c.run_id == run_id).values(
                status="failed", finished=time.time(), error=error,
                timings=_dumps(clean_nan(timings or {}))))

    def _settle_claim(self, c: Connection, run_id: str, state: str, error: str | None) -> bool:
        """Complete or fail the claim this process runs under (none: nothing to do). False when
        the claim is no longer held."""
        token = os.environ.get(CLAIM_ENV)
        if not token:
            return True
        done = c.execute(CLAIMS.update().where(CLAIMS.c.token == token,
                                               CLAIMS.c.state == "running")
                         .values(state=state, run_id=run_id, finished=self.now(c),
                                 error=error.splitlines()[0] if error else None))
        return done.rowcount == 1

    def _upsert(self, c: Connection, table: sa.Table, keys: list[str],
                rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(table)
        c.execute(stmt.on_conflict_do_update(index_elements=keys,
                                             set_={"values_json": stmt.excluded.values_json}),
                  rows)

    def require_artifacts(self) -> Path:
        """The artifacts root, or a UserError saying how to give one (a database server)."""
        if self.artifacts_root is None:
            raise UserError(f"store {self.location}: no folder for run files (weights, "
                            "figures): give --artifacts DIR, a path every node reaches, or set "
                            f"${ARTIFACTS_ENV} (or --no-save-weights)")
        return self.artifacts_root

    def artifacts_dir(self, run_id: str) -> Path:
        """The folder for one run's files (created)."""
        folder = self.require_artifacts() / run_id
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"artifacts folder {folder}: cannot create ({exc})") from None
        return folder

    def set_artifacts(self, run_id: str, artifacts: dict[str, Any]) -> None:
        """Record files a run wrote (merged into what is recorded already)."""
        with self._write() as c:
            old = c.execute(sa.select(RUNS.c.artifacts).where(RUNS.c.run_id == run_id)).scalar()
            merged = {**(json.loads(old) if old else {}), **artifacts}
            c.execute(RUNS.update().where(RUNS.c.run_id == run_id)
                      .values(artifacts=_dumps(clean_nan(merged))))

    def delete_run(self, run_id: str) -> None:
        """Remove a run and its image and subject rows (its files are the caller's). A matrix
        entry it completed becomes waiting again (the next ``bench`` runs it)."""
        with self._write() as c:
            c.execute(CLAIMS.update().where(CLAIMS.c.run_id == run_id).values(
                state="waiting", token=None, run_id=None, host=None, pid=None, error=None))
            c.execute(RUNS.delete().where(RUNS.c.run_id == run_id))

    # -- reading -----------------------------------------------------------------------------
    def _select_runs(self) -> sa.Select:
        """Runs, each with the end of the lease of the claim it runs under (if any)."""
        held = sa.and_(CLAIMS.c.run_id == RUNS.c.run_id, CLAIMS.c.state == "running")
        return (sa.select(RUNS, CLAIMS.c.expires.label("lease_ends"))
                .select_from(RUNS.outerjoin(CLAIMS, held)))

    def get_run(self, run_id: str) -> dict[str, Any]:
        with self._read() as c:
            now = self.now(c)
            row = c.execute(self._select_runs().where(RUNS.c.run_id == run_id)).first()
            if row is None:
                matches = c.execute(self._select_runs().where(
                    RUNS.c.run_id.startswith(run_id, autoescape=True))).fetchall()
                if len(matches) == 1:
                    row = matches[0]
                else:
                    recent = c.execute(sa.select(RUNS.c.run_id)
                                       .order_by(RUNS.c.created.desc()).limit(3)).scalars().all()
                    hint = (f" (recent: {', '.join(recent)})" if recent
                            else " (the store is empty)")
                    what = "is ambiguous" if matches else "not found"
                    raise UserError(f"run id '{run_id}' {what} in store {self.location}{hint}")
        return self._record(row, now)

    def image_metrics(self, run_id: str) -> list[dict[str, Any]]:
        t = IMAGE_METRICS.c
        with self._read() as c:
            rows = c.execute(sa.select(t.split, t.subject, t.slice, t.values_json)
                             .where(t.run_id == run_id)
                             .order_by(t.split, t.subject, t.slice)).fetchall()
        return [{"split": r.split, "subject": r.subject, "slice": r.slice,
                 **json.loads(r.values_json)} for r in rows]

    def subject_metrics(self, run_id: str) -> list[dict[str, Any]]:
        t = SUBJECT_METRICS.c
        with self._read() as c:
            rows = c.execute(sa.select(t.split, t.subject, t.values_json)
                             .where(t.run_id == run_id).order_by(t.split, t.subject)).fetchall()
        return [{"split": r.split, "subject": r.subject, **json.loads(r.values_json)}
                for r in rows]

    def runs(self, *, status: str | None = None, kind: str | None = None,
             matrix_key: str | None = None) -> list[dict[str, Any]]:
        query = self._select_runs()
        if kind is not None:
            query = query.where(RUNS.c.kind == kind)
        if matrix_key is not None:
            query = query.where(RUNS.c.matrix_key == matrix_key)
        with self._read() as c:
            now = self.now(c)
            rows = c.execute(query.order_by(RUNS.c.created)).fetchall()
        records = [self._record(r, now) for r in rows]
        return [r for r in records if status is None or r["status"] == status]

    def _record(self, row: sa.Row, now: float) -> dict[str, Any]:
        record = dict(row._mapping)
        lease_ends = record.pop("lease_ends", None)
        for key in _JSON_FIELDS:
            record[key] = json.loads(record[key]) if record[key] else None
        if record["status"] == "running" and (
                not alive(record["host"], record["pid"])
                or (lease_ends is not None and lease_ends < now)):
            # The process that owned it is gone (killed, crashed), or the bench worker it runs
            # under stopped renewing its lease (killed, its node lost): it never finished.
            record["status"] = "incomplete"
        return record


def _first_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return mask_url(text[0]) if text else type(inner).__name__


def alive(host: str | None, pid: int | None) -> bool:
    """False only when ``pid`` on this host is known to be gone (or a zombie)."""
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
