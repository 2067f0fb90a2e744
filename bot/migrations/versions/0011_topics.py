"""topics: clusters of shopper messages for the lead console (runs, topics, members)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 21:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('topic_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=20), nullable=False),
    sa.Column('method', sa.String(length=40), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('message_count', sa.Integer(), nullable=False),
    sa.Column('noise_count', sa.Integer(), nullable=False),
    sa.Column('last_event_id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('topic_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_topic_runs_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_topic_runs_scope'), ['scope'], unique=False)
    op.create_table('topics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('words', sa.JSON(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('centroid', sa.JSON(), nullable=False),
    sa.Column('radius', sa.Float(), nullable=False),
    sa.Column('representatives', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['topic_runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('topics', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_topics_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_topics_scope'), ['scope'], unique=False)
    op.create_table('topic_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('topic_id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.String(length=255), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('timestamp', sa.Float(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('intent', sa.String(length=100), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('distance', sa.Float(), nullable=False),
    sa.Column('incremental', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['topic_id'], ['topics.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('topic_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_topic_members_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_topic_members_day'), ['day'], unique=False)
        batch_op.create_index(batch_op.f('ix_topic_members_event_id'), ['event_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_topic_members_topic_id'), ['topic_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('topic_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_topic_members_topic_id'))
        batch_op.drop_index(batch_op.f('ix_topic_members_event_id'))
        batch_op.drop_index(batch_op.f('ix_topic_members_day'))
        batch_op.drop_index(batch_op.f('ix_topic_members_conversation_id'))
    op.drop_table('topic_members')
    with op.batch_alter_table('topics', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_topics_scope'))
        batch_op.drop_index(batch_op.f('ix_topics_run_id'))
    op.drop_table('topics')
    with op.batch_alter_table('topic_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_topic_runs_scope'))
        batch_op.drop_index(batch_op.f('ix_topic_runs_created_at'))
    op.drop_table('topic_runs')
