"""Claims: which worker runs which matrix entry, under a lease (``jmedbench bench`` on many
machines).

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("matrix_key", sa.Text, primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),  # order in the matrix that added it
        sa.Column("label", sa.Text, nullable=False),        # model/strategy/dataset/seedN
        sa.Column("state", sa.Text, nullable=False),        # waiting|running|completed|failed
        sa.Column("token", sa.Text),        # one per claim: only its holder may finish it
        sa.Column("host", sa.Text), sa.Column("pid", sa.Integer),  # the worker holding it
        sa.Column("run_id", sa.Text),       # the run of the latest claim
        sa.Column("claimed", sa.Float), sa.Column("heartbeat", sa.Float),
        sa.Column("expires", sa.Float), sa.Column("finished", sa.Float),  # store-clock seconds
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
    )
    op.create_index("claims_by_state", "claims", ["state", "position"])


def downgrade() -> None:
    op.drop_table("claims")
