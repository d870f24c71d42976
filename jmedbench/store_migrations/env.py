"""Alembic environment: always given an open connection by ``jmedbench.store`` (which holds the
schema lock and the transaction); never run from the ``alembic`` command line."""

from alembic import context

connection = context.config.attributes["connection"]
# render_as_batch: SQLite cannot ALTER most things; batch mode copies the table where needed.
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
