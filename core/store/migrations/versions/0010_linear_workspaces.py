"""linear_tokens: workspace installs (OAuth, actor=app) beside the app's client-credentials token

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 18:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("linear_tokens") as batch:
        batch.alter_column("client_id", new_column_name="key", existing_type=sa.String(length=100), nullable=False)
        batch.add_column(sa.Column("refresh_token_encrypted", sa.Text(), nullable=True))
        batch.add_column(sa.Column("organization_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("organization_name", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("url_key", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("app_user_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("installed_at", sa.DateTime(), nullable=True))
        batch.create_unique_constraint("uq_linear_tokens_organization_id", ["organization_id"])


def downgrade() -> None:
    with op.batch_alter_table("linear_tokens") as batch:
        batch.drop_constraint("uq_linear_tokens_organization_id", type_="unique")
        for column in ("installed_at", "app_user_id", "url_key", "organization_name", "organization_id"):
            batch.drop_column(column)
        batch.drop_column("refresh_token_encrypted")
        batch.alter_column("key", new_column_name="client_id", existing_type=sa.String(length=100), nullable=False)
