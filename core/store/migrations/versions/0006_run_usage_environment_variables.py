"""run usage, environment variables

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 14:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("usage", sa.JSON(), nullable=True))
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("variables", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_column("variables")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("usage")
