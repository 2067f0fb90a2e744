"""cart item color: a cart line is a product in one size and one color

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 10:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite: batch mode copies the table; rows, the index and the foreign key survive.
    with op.batch_alter_table('cart_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('color', sa.String(length=60), nullable=False, server_default=''))
        batch_op.drop_constraint('uq_cart_line', type_='unique')
        batch_op.create_unique_constraint('uq_cart_line', ['cart_key', 'product_id', 'size', 'color'])


def downgrade() -> None:
    # Lines that differ only by color are merged first (quantities add up), then the column goes.
    op.execute(sa.text(
        "UPDATE cart_items SET quantity = (SELECT SUM(c.quantity) FROM cart_items c WHERE c.cart_key = "
        "cart_items.cart_key AND c.product_id = cart_items.product_id AND c.size = cart_items.size) "
        "WHERE id IN (SELECT MIN(id) FROM cart_items GROUP BY cart_key, product_id, size)"))
    op.execute(sa.text(
        "DELETE FROM cart_items WHERE id NOT IN (SELECT MIN(id) FROM cart_items GROUP BY cart_key, product_id, size)"))
    with op.batch_alter_table('cart_items', schema=None) as batch_op:
        batch_op.drop_constraint('uq_cart_line', type_='unique')
        batch_op.create_unique_constraint('uq_cart_line', ['cart_key', 'product_id', 'size'])
        batch_op.drop_column('color')
