"""runs.worker_host: which host executed a run (several workers' hosts share one store)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 06:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("worker_host", sa.String(200), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("worker_host")
