"""privacy: the privacy log (exports, erasures, retention runs)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 09:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('privacy_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('subject_hash', sa.String(length=64), nullable=True),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('privacy_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_privacy_log_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_privacy_log_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_privacy_log_subject_hash'), ['subject_hash'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('privacy_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_privacy_log_subject_hash'))
        batch_op.drop_index(batch_op.f('ix_privacy_log_at'))
        batch_op.drop_index(batch_op.f('ix_privacy_log_action'))
    op.drop_table('privacy_log')
