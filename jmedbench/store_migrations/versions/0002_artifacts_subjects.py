"""Files a run wrote (``runs.artifacts``) and per-subject score rows.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "artifacts" not in {c["name"] for c in inspector.get_columns("runs")}:
        with op.batch_alter_table("runs") as batch:
            batch.add_column(sa.Column("artifacts", sa.Text))  # JSON: {"weights": path, ...}
    # A store written between the two changes may have the table already.
    if not inspector.has_table("subject_metrics"):
        op.create_table(
            "subject_metrics",
            sa.Column("run_id", sa.Text, sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
                      nullable=False),
            sa.Column("split", sa.Text, nullable=False),  # test | shift | an eval prefix
            sa.Column("subject", sa.Text, nullable=False),
            sa.Column("values_json", sa.Text, nullable=False),
            sa.PrimaryKeyConstraint("run_id", "split", "subject"),
        )


def downgrade() -> None:
    op.drop_table("subject_metrics")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("artifacts")
