"""The first schema: runs and their per-image metrics (stores made before the artifacts column).

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("finished", sa.Float),
        sa.Column("status", sa.Text, nullable=False),   # running | completed | failed | incomplete
        sa.Column("kind", sa.Text, nullable=False, server_default="run"),
        sa.Column("model", sa.Text), sa.Column("strategy", sa.Text),
        sa.Column("dataset", sa.Text), sa.Column("profile", sa.Text),
        sa.Column("seed", sa.Integer), sa.Column("backend", sa.Text),
        sa.Column("config", sa.Text, nullable=False),      # JSON: the resolved RunConfig
        sa.Column("provenance", sa.Text, nullable=False),  # JSON: versions, git, host, pid
        sa.Column("timings", sa.Text),                     # JSON: seconds per stage
        sa.Column("metrics", sa.Text),                     # JSON: aggregated metrics
        sa.Column("details", sa.Text),                     # JSON: robustness, density, ...
        sa.Column("error", sa.Text),
        sa.Column("host", sa.Text), sa.Column("pid", sa.Integer),
        sa.Column("matrix_key", sa.Text),                  # a matrix entry, for `bench`
    )
    op.create_table(
        "image_metrics",
        sa.Column("run_id", sa.Text, sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("split", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("slice", sa.Integer, nullable=False),
        sa.Column("values_json", sa.Text, nullable=False),  # {"dice": [per class], ...}
        sa.PrimaryKeyConstraint("run_id", "split", "subject", "slice"),
    )
    op.create_index("runs_by_entry", "runs", ["model", "strategy", "dataset", "profile"])
    op.create_index("runs_by_matrix", "runs", ["matrix_key"])


def downgrade() -> None:
    op.drop_table("image_metrics")
    op.drop_table("runs")
