"""Schema version 2: runs (with their JUnit bytes), their tests, per-image tallies, running sessions."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "2"
down_revision = "1"
branch_labels = None
depends_on = None


# longer because a migration is one transaction that reads best as the schema it creates, table after table.
def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Text, nullable=False, unique=True),
        sa.Column("started", sa.Text, nullable=False),
        sa.Column("finished", sa.Text, nullable=False),
        sa.Column("rig", sa.Text, nullable=False),
        sa.Column("device_type", sa.Text, nullable=False),
        sa.Column("image", sa.Text, nullable=False),
        sa.Column("image_sha256", sa.Text, nullable=False),
        sa.Column("os_version", sa.Text, nullable=False),
        sa.Column("os_profile", sa.Text, nullable=False),
        sa.Column("exitstatus", sa.Integer, nullable=False),
        sa.Column("passed", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("skipped", sa.Integer, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("boot_seconds", sa.Float),
        sa.Column("facts", sa.Text, nullable=False),
        sa.Column("junit_path", sa.Text, nullable=False),
        sa.Column("junit", sa.LargeBinary, nullable=False),
        sa.Column("junit_sha256", sa.Text, nullable=False),
    )
    op.create_index("runs_by_device_type", "runs", ["device_type", "id"])
    op.create_index("runs_by_rig", "runs", ["rig", "id"])
    op.create_table(
        "tests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("suite", sa.Text, nullable=False),
        sa.Column("test", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
    )
    op.create_index("tests_by_run", "tests", ["run"])
    op.create_index("tests_by_name", "tests", ["suite", "test", "run"])
    op.create_table(
        "test_stats",
        sa.Column("device_type", sa.Text, primary_key=True),
        sa.Column("image_sha256", sa.Text, primary_key=True),
        sa.Column("suite", sa.Text, primary_key=True),
        sa.Column("test", sa.Text, primary_key=True),
        sa.Column("passed", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("skipped", sa.Integer, nullable=False),
        sa.Column("last_run", sa.Integer, nullable=False),
    )
    op.create_index("test_stats_flaky", "test_stats", ["failed", "passed"])
    op.create_table(
        "running",
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("started", sa.Text, nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("rig", sa.Text, nullable=False),
        sa.Column("artifacts", sa.Text, nullable=False),
    )
