"""drift: the `vulnerable` finding kind, its run counter, and the advisory check of each run and lock

The kind CHECKs are rewritten with `vulnerable` in the finding-kind table's order (after
`missing`). `n_vulnerable` gets a server default of 0 so runs recorded before it read as having
found none; `advisories` is NULL for those runs (the check did not exist), never "checked".

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-09 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_BEFORE = "'tampered', 'missing', 'unresolvable', 'yanked', 'outdated', 'current'"
_AFTER = "'tampered', 'missing', 'vulnerable', 'unresolvable', 'yanked', 'outdated', 'current'"
_STATUSES = "'checked', 'unavailable', 'off'"


def _kind_checks(kinds: str) -> None:
    with op.batch_alter_table('drift_results', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_drift_results_status_known'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_drift_results_status_known'), f"status IN ({kinds})")
    with op.batch_alter_table('drift_findings', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_drift_findings_kind_known'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_drift_findings_kind_known'), f"kind IN ({kinds})")


def upgrade() -> None:
    with op.batch_alter_table('drift_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('n_vulnerable', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('advisories', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('advisories_error', sa.Text(), nullable=True))
        batch_op.create_check_constraint(
            batch_op.f('ck_drift_runs_advisories_known'), f"advisories IN ({_STATUSES})"
        )
    with op.batch_alter_table('drift_results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('advisories', sa.String(length=16), nullable=True))
        batch_op.create_check_constraint(
            batch_op.f('ck_drift_results_advisories_known'), f"advisories IN ({_STATUSES})"
        )
    with op.batch_alter_table('drift_findings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('advisory', sa.Text(), nullable=True))
    _kind_checks(_AFTER)


def downgrade() -> None:
    # Findings and verdicts of the kind the older schema does not know go with it.
    op.execute("DELETE FROM drift_findings WHERE kind = 'vulnerable'")
    op.execute("DELETE FROM drift_results WHERE status = 'vulnerable'")
    _kind_checks(_BEFORE)
    with op.batch_alter_table('drift_findings', schema=None) as batch_op:
        batch_op.drop_column('advisory')
    with op.batch_alter_table('drift_results', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_drift_results_advisories_known'), type_='check')
        batch_op.drop_column('advisories')
    with op.batch_alter_table('drift_runs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_drift_runs_advisories_known'), type_='check')
        batch_op.drop_column('advisories_error')
        batch_op.drop_column('advisories')
        batch_op.drop_column('n_vulnerable')
