"""Schema version 4: one store for a lab. Runs carry the build that made them (a CI build tag), rigs' health
checks and the mirror of who holds each rig's lease live beside the runs, and so do fault matrices (which
suite caught which broken image)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "4"
down_revision = "3"
branch_labels = None
depends_on = None


# longer because a migration is one transaction that reads best as the schema it creates, table after table.
def upgrade() -> None:
    op.add_column("runs", sa.Column("build_tag", sa.Text, nullable=False, server_default=""))
    op.create_index("runs_by_build_tag", "runs", ["build_tag", "id"])
    op.create_table(
        "rig_checks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("rig", sa.Text, nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("checked_at", sa.Text, nullable=False),
        sa.Column("healthy", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("console", sa.LargeBinary),
    )
    op.create_index("rig_checks_by_rig", "rig_checks", ["rig", "id"])
    op.create_table(
        "leases",
        sa.Column("rig", sa.Text, primary_key=True),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("holder", sa.Text, nullable=False),
        sa.Column("since", sa.Text, nullable=False),
        sa.Column("heartbeat", sa.Text, nullable=False),
    )
    op.create_table(
        "fault_matrices",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("started", sa.Text, nullable=False),
        sa.Column("finished", sa.Text, nullable=False),
        sa.Column("rig", sa.Text, nullable=False),
        sa.Column("device_type", sa.Text, nullable=False),
        sa.Column("image", sa.Text, nullable=False),
        sa.Column("image_sha256", sa.Text, nullable=False),
        sa.Column("os_profile", sa.Text, nullable=False),
        sa.Column("control", sa.Text, nullable=False),
        sa.Column("caught", sa.Integer, nullable=False),
        sa.Column("applicable", sa.Integer, nullable=False),
        sa.Column("cells", sa.Text, nullable=False),
    )
    op.create_index("fault_matrices_by_image", "fault_matrices", ["image_sha256", "os_profile", "id"])
