"""names: lock names and their history, proposals, lock provenance, retired inputs, token name patterns

A name points at its current input; `name_events` is its history of moves and promotions
(digests without foreign keys, so `lockd gc` may remove an input that history mentions).
`proposals` hold changed re-resolutions until they are promoted; `lock_provenance` records
the pins a lock resolved under a name preferred; `retired_inputs` are out of drift. Tokens
gain `name_prefixes`, the name patterns a token is limited to (NULL: every name).

Numbered 0004 on the names branch; the lead renumbers it at merge if another 0004 lands first.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 07:09:50.279868
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('name_events',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('input_digest', sa.String(length=64), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=True),
    sa.Column('lock_digest', sa.String(length=64), nullable=True),
    sa.Column('proposal_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("action IN ('created', 'moved', 'promoted', 'archived', 'retired', 'restored')", name=op.f('ck_name_events_action_known')),
    sa.CheckConstraint("length(input_digest) = 64 AND ltrim(input_digest, '0123456789abcdef') = ''", name=op.f('ck_name_events_input_digest_hex')),
    sa.CheckConstraint('seq >= 1', name=op.f('ck_name_events_seq_positive')),
    sa.PrimaryKeyConstraint('name', 'seq', name=op.f('pk_name_events'))
    )
    with op.batch_alter_table('name_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_name_events_input_digest'), ['input_digest'], unique=False)

    op.create_table('names',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('input_digest', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('auto_promote', sa.String(length=16), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("auto_promote IN ('never', 'patch', 'minor', 'always')", name=op.f('ck_names_auto_promote_known')),
    sa.CheckConstraint("status IN ('active', 'archived', 'retired')", name=op.f('ck_names_status_known')),
    sa.ForeignKeyConstraint(['input_digest'], ['inputs.digest'], name=op.f('fk_names_input_digest_inputs')),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_names'))
    )
    with op.batch_alter_table('names', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_names_input_digest'), ['input_digest'], unique=False)

    op.create_table('retired_inputs',
    sa.Column('input_digest', sa.String(length=64), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['input_digest'], ['inputs.digest'], name=op.f('fk_retired_inputs_input_digest_inputs')),
    sa.PrimaryKeyConstraint('input_digest', name=op.f('pk_retired_inputs'))
    )
    op.create_table('lock_provenance',
    sa.Column('lock_digest', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('preferred_lock_digest', sa.String(length=64), nullable=True),
    sa.Column('preferences', sa.Text(), nullable=False),
    sa.Column('upgrade', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lock_digest'], ['locks.digest'], name=op.f('fk_lock_provenance_lock_digest_locks')),
    sa.PrimaryKeyConstraint('lock_digest', name=op.f('pk_lock_provenance'))
    )
    op.create_table('proposals',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('input_digest', sa.String(length=64), nullable=False),
    sa.Column('base_revision', sa.Integer(), nullable=False),
    sa.Column('base_lock_digest', sa.String(length=64), nullable=False),
    sa.Column('lock_digest', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('diff', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.String(length=200), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=True),
    sa.CheckConstraint("source IN ('refresh', 'drift', 'upgrade')", name=op.f('ck_proposals_source_known')),
    sa.CheckConstraint("status IN ('open', 'promoted', 'superseded')", name=op.f('ck_proposals_status_known')),
    sa.ForeignKeyConstraint(['base_lock_digest'], ['locks.digest'], name=op.f('fk_proposals_base_lock_digest_locks')),
    sa.ForeignKeyConstraint(['input_digest'], ['inputs.digest'], name=op.f('fk_proposals_input_digest_inputs')),
    sa.ForeignKeyConstraint(['lock_digest'], ['locks.digest'], name=op.f('fk_proposals_lock_digest_locks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_proposals'))
    )
    with op.batch_alter_table('proposals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_proposals_input_digest_status'), ['input_digest', 'status'], unique=False)

    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name_prefixes', sa.String(length=1000), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.drop_column('name_prefixes')

    with op.batch_alter_table('proposals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_proposals_input_digest_status'))

    op.drop_table('proposals')
    op.drop_table('lock_provenance')
    op.drop_table('retired_inputs')
    with op.batch_alter_table('names', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_names_input_digest'))

    op.drop_table('names')
    with op.batch_alter_table('name_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_name_events_input_digest'))

    op.drop_table('name_events')
