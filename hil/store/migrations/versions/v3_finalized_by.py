"""Schema version 3: who finalized a release, set by the one conditional update that finalizes it, so a
gate that finds it already final can say who did. The first with Alembic's version table."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "3"
down_revision = "2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("releases", sa.Column("finalized_by", sa.Text))
