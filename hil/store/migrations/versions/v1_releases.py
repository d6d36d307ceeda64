"""Schema version 1: releases (with the images they ship) and the decisions of every gate.

A store from before versions were numbered (user_version 0) already has both tables, perhaps without the
images column: this revision then adds only what is missing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    if "releases" not in tables:
        op.create_table(
            "releases",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("version", sa.Text, nullable=False),
            sa.Column("device_types", sa.Text, nullable=False),
            sa.Column("status", sa.Text, nullable=False),
            sa.Column("created", sa.Text, nullable=False),
            sa.Column("finalized_at", sa.Text),
            sa.Column("images", sa.Text, nullable=False, server_default="{}"),
            sa.CheckConstraint("status IN ('draft', 'final', 'invalidated')", name="releases_status"),
        )
    else:
        columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("releases")}
        if "images" not in columns:  # a store from before releases named their images
            op.add_column("releases", sa.Column("images", sa.Text, nullable=False, server_default="{}"))
    if "decisions" not in tables:
        op.create_table(
            "decisions",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False),
            sa.Column("decided_at", sa.Text, nullable=False),
            sa.Column("who", sa.Text, nullable=False),
            sa.Column("verdict", sa.Text, nullable=False),
            sa.Column("outcome", sa.Text, nullable=False),
            sa.Column("policy_sha256", sa.Text, nullable=False),
            sa.Column("evidence", sa.Text, nullable=False),
        )
