"""optional price: products.price may be NULL ("price on request")

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 10:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_PRICE = sa.Numeric(precision=10, scale=2, asdecimal=False)


def upgrade() -> None:
    # SQLite cannot ALTER a column: batch mode copies the table (rows, indexes and the
    # cart_items foreign key survive; the copy keeps the same table name).
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.alter_column('price', existing_type=_PRICE, nullable=True)


def downgrade() -> None:
    # A NOT NULL price cannot hold products without one: those are removed first.
    op.execute(sa.text("DELETE FROM products WHERE price IS NULL"))
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.alter_column('price', existing_type=_PRICE, nullable=False)
