"""dist_metadata keyed by the file's identity on its index, not by its claimed sha256

Entries keyed by a claimed sha256 alone could have been poisoned by any configured index (a
page listing its own file with another file's hash), so they are dropped, not carried over:
the cache refills as locks are resolved. The table is recreated rather than altered: its
primary key changes, which SQLite cannot alter in place.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 10:12:03.114602
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_HEX = "length({0}) = 64 AND ltrim({0}, '0123456789abcdef') = ''"


def upgrade() -> None:
    op.drop_table('dist_metadata')
    op.create_table('dist_metadata',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('page_url', sa.Text(), nullable=False),
    sa.Column('filename', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('metadata', sa.LargeBinary(), nullable=False),
    sa.CheckConstraint(_HEX.format('key'), name=op.f('ck_dist_metadata_key_hex')),
    sa.CheckConstraint(_HEX.format('sha256'), name=op.f('ck_dist_metadata_sha256_hex')),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_dist_metadata'))
    )


def downgrade() -> None:
    op.drop_table('dist_metadata')
    op.create_table('dist_metadata',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('metadata', sa.LargeBinary(), nullable=False),
    sa.CheckConstraint(_HEX.format('sha256'), name=op.f('ck_dist_metadata_sha256_hex')),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_dist_metadata'))
    )
