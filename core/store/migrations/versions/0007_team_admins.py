"""team admins

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 16:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()))
    # Existing teams keep working: each team's first account becomes its admin.
    op.execute(
        """
        UPDATE accounts SET is_admin = TRUE WHERE uid IN (
            SELECT a.uid FROM accounts a
            WHERE a.created_at = (SELECT MIN(b.created_at) FROM accounts b WHERE b.team_uid = a.team_uid)
        )
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("is_admin")
