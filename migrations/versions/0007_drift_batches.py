"""drift: the batches of a run that replicas claim, so N replicas share one run

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'drift_batches',
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.Column('locks', sa.Text(), nullable=False),
        sa.Column('claimed_by', sa.String(length=64), nullable=True),
        sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['run_id'], ['drift_runs.id'], name=op.f('fk_drift_batches_run_id_drift_runs')),
        sa.PrimaryKeyConstraint('run_id', 'n', name=op.f('pk_drift_batches')),
    )


def downgrade() -> None:
    op.drop_table('drift_batches')
