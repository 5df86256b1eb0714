"""drift: runs with heartbeat and counts, per-lock results, findings, the run lease

Replaces the drift sketch of 0001 (no code ever wrote to it, so the tables are recreated
rather than altered: adding NOT NULL columns to a live table would need defaults that mean
nothing).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 03:52:40.931799
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_KINDS = "'tampered', 'missing', 'unresolvable', 'yanked', 'outdated', 'current'"


def upgrade() -> None:
    with op.batch_alter_table('drift_findings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_drift_findings_run_id'))
        batch_op.drop_index(batch_op.f('ix_drift_findings_input_digest'))
    op.drop_table('drift_findings')
    op.drop_table('drift_runs')

    op.create_table('drift_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('holder', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('scheduled_for', sa.DateTime(timezone=True), nullable=True),
    sa.Column('duration_seconds', sa.Float(), nullable=True),
    sa.Column('locks_total', sa.Integer(), nullable=False),
    sa.Column('locks_checked', sa.Integer(), nullable=False),
    sa.Column('n_current', sa.Integer(), nullable=False),
    sa.Column('n_outdated', sa.Integer(), nullable=False),
    sa.Column('n_yanked', sa.Integer(), nullable=False),
    sa.Column('n_unresolvable', sa.Integer(), nullable=False),
    sa.Column('n_missing', sa.Integer(), nullable=False),
    sa.Column('n_tampered', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('running', 'complete', 'failed', 'abandoned')", name=op.f('ck_drift_runs_status_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drift_runs'))
    )
    with op.batch_alter_table('drift_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_drift_runs_scheduled_for'), ['scheduled_for'], unique=False)
        batch_op.create_index(batch_op.f('ix_drift_runs_started_at'), ['started_at'], unique=False)

    op.create_table('drift_results',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('input_digest', sa.String(length=64), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('lock_digest', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('fresh_lock_digest', sa.String(length=64), nullable=True),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(f"status IN ({_KINDS})", name=op.f('ck_drift_results_status_known')),
    sa.ForeignKeyConstraint(['input_digest'], ['inputs.digest'], name=op.f('fk_drift_results_input_digest_inputs')),
    sa.ForeignKeyConstraint(['lock_digest'], ['locks.digest'], name=op.f('fk_drift_results_lock_digest_locks')),
    sa.ForeignKeyConstraint(['run_id'], ['drift_runs.id'], name=op.f('fk_drift_results_run_id_drift_runs')),
    sa.PrimaryKeyConstraint('run_id', 'input_digest', name=op.f('pk_drift_results'))
    )
    with op.batch_alter_table('drift_results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_drift_results_input_digest'), ['input_digest'], unique=False)
        batch_op.create_index(batch_op.f('ix_drift_results_status'), ['status'], unique=False)

    op.create_table('drift_findings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('input_digest', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('package', sa.String(length=200), nullable=True),
    sa.Column('filename', sa.String(length=500), nullable=True),
    sa.Column('old_version', sa.String(length=100), nullable=True),
    sa.Column('new_version', sa.String(length=100), nullable=True),
    sa.Column('old_sha256', sa.String(length=64), nullable=True),
    sa.Column('new_sha256', sa.String(length=64), nullable=True),
    sa.Column('change', sa.String(length=16), nullable=True),
    sa.Column('code', sa.String(length=64), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.CheckConstraint(f"kind IN ({_KINDS})", name=op.f('ck_drift_findings_kind_known')),
    sa.CheckConstraint("change IN ('upgrade', 'downgrade', 'added', 'removed')", name=op.f('ck_drift_findings_change_known')),
    sa.ForeignKeyConstraint(['input_digest'], ['inputs.digest'], name=op.f('fk_drift_findings_input_digest_inputs')),
    sa.ForeignKeyConstraint(['run_id'], ['drift_runs.id'], name=op.f('fk_drift_findings_run_id_drift_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drift_findings'))
    )
    with op.batch_alter_table('drift_findings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_drift_findings_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_drift_findings_run_id_input_digest'), ['run_id', 'input_digest'], unique=False)

    op.create_table('drift_lease',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('holder', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_drift_lease'))
    )


def downgrade() -> None:
    op.drop_table('drift_lease')
    with op.batch_alter_table('drift_findings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_drift_findings_run_id_input_digest'))
        batch_op.drop_index(batch_op.f('ix_drift_findings_kind'))
    op.drop_table('drift_findings')
    with op.batch_alter_table('drift_results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_drift_results_status'))
        batch_op.drop_index(batch_op.f('ix_drift_results_input_digest'))
    op.drop_table('drift_results')
    with op.batch_alter_table('drift_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_drift_runs_started_at'))
        batch_op.drop_index(batch_op.f('ix_drift_runs_scheduled_for'))
    op.drop_table('drift_runs')

    # the 0001 sketch, as it was
    op.create_table('drift_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('running', 'complete', 'failed')", name=op.f('ck_drift_runs_status_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drift_runs'))
    )
    op.create_table('drift_findings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('input_digest', sa.String(length=64), nullable=False),
    sa.Column('lock_digest', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['input_digest'], ['inputs.digest'], name=op.f('fk_drift_findings_input_digest_inputs')),
    sa.ForeignKeyConstraint(['lock_digest'], ['locks.digest'], name=op.f('fk_drift_findings_lock_digest_locks')),
    sa.ForeignKeyConstraint(['run_id'], ['drift_runs.id'], name=op.f('fk_drift_findings_run_id_drift_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drift_findings')),
    sa.UniqueConstraint('run_id', 'input_digest', name=op.f('uq_drift_findings_run_id_input_digest'))
    )
    with op.batch_alter_table('drift_findings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_drift_findings_input_digest'), ['input_digest'], unique=False)
        batch_op.create_index(batch_op.f('ix_drift_findings_run_id'), ['run_id'], unique=False)
