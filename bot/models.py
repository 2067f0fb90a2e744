"""Imports every module that defines tables, so Alembic and create_all see them all."""

from bot.catalog.models import Product
from bot.shop.cart import CartItem
from bot.shop.models import (
    CrmProfile,
    Customer,
    Order,
    OrderAccessGrant,
    OrderItem,
    Preference,
    Refund,
    Return,
    Shipment,
    VerificationThrottle,
)

__all__ = [
    "CartItem",
    "CrmProfile",
    "Customer",
    "Order",
    "OrderAccessGrant",
    "OrderItem",
    "Preference",
    "Product",
    "Refund",
    "Return",
    "Shipment",
    "VerificationThrottle",
]
