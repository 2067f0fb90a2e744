"""conversation tests: saved conversations as regression tests, and their last result per model version

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 10:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('conversation_tests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('turns', sa.JSON(), nullable=False),
    sa.Column('source', sa.String(length=255), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('conversation_test_results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('test_id', sa.Integer(), nullable=False),
    sa.Column('model_version', sa.Integer(), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('diverged_at', sa.Integer(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('ran_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['test_id'], ['conversation_tests.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('test_id', 'model_version', name='uq_conversation_test_results_version')
    )
    with op.batch_alter_table('conversation_test_results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conversation_test_results_model_version'), ['model_version'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_conversation_test_results_test_id'), ['test_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('conversation_test_results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conversation_test_results_test_id'))
        batch_op.drop_index(batch_op.f('ix_conversation_test_results_model_version'))
    op.drop_table('conversation_test_results')
    op.drop_table('conversation_tests')
