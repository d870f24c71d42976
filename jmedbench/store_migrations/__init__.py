"""Alembic migrations of the results store (SQLite and PostgreSQL alike).

``jmedbench.store.Store`` runs them on open: a new store is built by running every revision, an
old one is brought up to date, one written by a newer jmedbench is refused. Revisions are
numbered ``0001``, ``0002``, ...; ``store.SCHEMA_REVISIONS`` lists them in order (a test checks
it against this folder). To add one: a new file in ``versions/`` with ``down_revision`` the
last, and its number appended to ``SCHEMA_REVISIONS``.
"""
