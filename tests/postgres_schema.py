"""A fresh PostgreSQL schema per test, on the server JMEDBENCH_TEST_POSTGRES names (.ci/run
starts one): tests never see each other's rows. Without the variable such tests skip."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from typing import Iterator

import pytest

SERVER = os.environ.get("JMEDBENCH_TEST_POSTGRES")
needs_postgres = pytest.mark.skipif(
    not SERVER, reason="set JMEDBENCH_TEST_POSTGRES to a PostgreSQL URL (.ci/run does)")


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A store URL whose tables live in a new schema (dropped afterwards)."""
    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(SERVER.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as c:
        c.execute(sa.text(f"CREATE SCHEMA {name}"))
    sep = "&" if "?" in SERVER else "?"
    try:
        yield f"{SERVER}{sep}options=-csearch_path%3D{name}"
    finally:
        with admin.begin() as c:
            c.execute(sa.text(f"DROP SCHEMA {name} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=needs_postgres)])
def store_location(request, tmp_path) -> Iterator[str]:
    """A new store's location: an SQLite file, and a PostgreSQL schema when a server is set."""
    if request.param == "sqlite":
        yield str(tmp_path / "s.sqlite")
    else:
        with fresh_schema() as url:
            yield url
