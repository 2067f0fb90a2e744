"""Imports every module that defines tables, so Alembic and create_all see them all."""

from bot.catalog.models import Product
from bot.shop.cart import CartItem

__all__ = ["CartItem", "Product"]
