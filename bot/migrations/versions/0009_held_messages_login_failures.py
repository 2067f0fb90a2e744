"""relay: held shopper messages (Rasa unreachable) and failed staff logins, shared by gateway replicas

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 09:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('held_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.String(length=120), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('claimed_by', sa.String(length=40), nullable=True),
    sa.Column('claimed_until', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('held_messages', schema=None) as batch_op:
        batch_op.create_index('ix_held_messages_conversation', ['conversation_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_held_messages_created_at'), ['created_at'], unique=False)
    op.create_table('login_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=240), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index('ix_login_failures_key_at', ['key', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_login_failures_at'), ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_failures_at'))
        batch_op.drop_index('ix_login_failures_key_at')
    op.drop_table('login_failures')
    with op.batch_alter_table('held_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_held_messages_created_at'))
        batch_op.drop_index('ix_held_messages_conversation')
    op.drop_table('held_messages')
