"""lead console: nlu inbox, labels, model registry

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 10:23:17.106323
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('nlu_ingest_state',
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('last_event_id', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('source')
    )
    op.create_table('model_activations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('previous_version', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('author', sa.String(length=120), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('model_activations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_activations_version'), ['version'], unique=False)

    op.create_table('model_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=500), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('running', sa.Boolean(), nullable=True),
    sa.Column('stage', sa.String(length=200), nullable=False),
    sa.Column('progress', sa.Float(), nullable=False),
    sa.Column('log_tail', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_by_name', sa.String(length=120), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('from_scratch', sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column('data_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('test_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('examples', sa.Integer(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('baseline_version', sa.Integer(), nullable=True),
    sa.Column('baseline_metrics', sa.JSON(), nullable=False),
    sa.Column('changed', sa.JSON(), nullable=False),
    sa.Column('gate', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('activated_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('version')
    )
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_versions_active'), ['active'], unique=False)
        batch_op.create_index(batch_op.f('ix_model_versions_state'), ['state'], unique=False)
        batch_op.create_index('uq_model_versions_one_running', ['running'], unique=True)

    op.create_table('nlu_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('sender_id', sa.String(length=255), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('group_key', sa.String(length=255), nullable=False),
    sa.Column('timestamp', sa.DateTime(), nullable=False),
    sa.Column('intent', sa.String(length=100), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('entities', sa.JSON(), nullable=False),
    sa.Column('low_confidence', sa.Boolean(), nullable=False),
    sa.Column('fallback', sa.Boolean(), nullable=False),
    sa.Column('escalated', sa.Boolean(), nullable=False),
    sa.Column('sampled', sa.Boolean(), nullable=False),
    sa.Column('in_inbox', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('label_intent', sa.String(length=100), nullable=True),
    sa.Column('label_entities', sa.JSON(), nullable=False),
    sa.Column('label_target', sa.String(length=10), nullable=False),
    sa.Column('labelled_by', sa.Integer(), nullable=True),
    sa.Column('labelled_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['labelled_by'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('nlu_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_nlu_messages_group_key'), ['group_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_nlu_messages_in_inbox'), ['in_inbox'], unique=False)
        batch_op.create_index(batch_op.f('ix_nlu_messages_intent'), ['intent'], unique=False)
        batch_op.create_index(batch_op.f('ix_nlu_messages_sender_id'), ['sender_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_nlu_messages_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_nlu_messages_timestamp'), ['timestamp'], unique=False)

    op.create_table('nlu_label_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('intent', sa.String(length=100), nullable=True),
    sa.Column('entities', sa.JSON(), nullable=False),
    sa.Column('target', sa.String(length=10), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('author', sa.String(length=120), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['nlu_messages.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('nlu_label_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_nlu_label_history_message_id'), ['message_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('nlu_label_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_nlu_label_history_message_id'))

    op.drop_table('nlu_label_history')
    with op.batch_alter_table('nlu_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_nlu_messages_timestamp'))
        batch_op.drop_index(batch_op.f('ix_nlu_messages_status'))
        batch_op.drop_index(batch_op.f('ix_nlu_messages_sender_id'))
        batch_op.drop_index(batch_op.f('ix_nlu_messages_intent'))
        batch_op.drop_index(batch_op.f('ix_nlu_messages_in_inbox'))
        batch_op.drop_index(batch_op.f('ix_nlu_messages_group_key'))

    op.drop_table('nlu_messages')
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_index('uq_model_versions_one_running')
        batch_op.drop_index(batch_op.f('ix_model_versions_state'))
        batch_op.drop_index(batch_op.f('ix_model_versions_active'))

    op.drop_table('model_versions')
    with op.batch_alter_table('model_activations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_activations_version'))

    op.drop_table('model_activations')
    op.drop_table('nlu_ingest_state')
