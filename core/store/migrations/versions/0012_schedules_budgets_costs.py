"""schedules, their fires, budgets; runs carry their cost, who pays first, and their schedule

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 00:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("billed_to", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("inference_cost_usd", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("compute_cost_usd", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("schedule_uid", sa.String(32), nullable=True))
        batch.create_index("ix_runs_team_billed_created", ["team_uid", "billed_to", "created_at"])
    op.create_table(
        "budgets",
        sa.Column("team_uid", sa.String(32), sa.ForeignKey("teams.uid", ondelete="CASCADE"), primary_key=True),
        sa.Column("account_uid", sa.String(32), primary_key=True),
        sa.Column("monthly_usd", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "schedules",
        sa.Column("uid", sa.String(32), primary_key=True),
        sa.Column("team_uid", sa.String(32), sa.ForeignKey("teams.uid", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("cron", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("skill_spec", sa.String(500), nullable=True),
        sa.Column("environment_id", sa.String(32), nullable=False),
        sa.Column("agent_uid", sa.String(32), nullable=True),
        sa.Column("model_id", sa.String(200), nullable=True),
        sa.Column("creator_uid", sa.String(32), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("paused_reason", sa.String(1000), nullable=True),
        sa.Column("next_fire_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_schedules_team_uid", "schedules", ["team_uid"])
    op.create_index("ix_schedules_next_fire_at", "schedules", ["next_fire_at"])
    op.create_table(
        "schedule_fires",
        sa.Column("schedule_uid", sa.String(32), sa.ForeignKey("schedules.uid", ondelete="CASCADE"), primary_key=True),
        sa.Column("fire_time", sa.DateTime(), primary_key=True),
        sa.Column("claimed_at", sa.DateTime(), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error", sa.String(1000), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("schedule_fires")
    op.drop_index("ix_schedules_next_fire_at", "schedules")
    op.drop_index("ix_schedules_team_uid", "schedules")
    op.drop_table("schedules")
    op.drop_table("budgets")
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_team_billed_created")
        batch.drop_column("schedule_uid")
        batch.drop_column("compute_cost_usd")
        batch.drop_column("inference_cost_usd")
        batch.drop_column("billed_to")
