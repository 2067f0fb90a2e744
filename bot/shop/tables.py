"""Shop tables: customers, orders and their items, shipments, returns, refunds, the CRM profile.

Money is stored as exact decimals rendered to float (``Numeric(10, 2)``), times as naive UTC.
Every status change an order can go through is a column value here, and the services in
``bot.shop.orders`` are the only code that writes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db import Base

MONEY = Numeric(10, 2, asdecimal=False)

# Order statuses, in the order an order normally goes through them.
PLACED = "placed"
PAID = "paid"
SHIPPED = "shipped"
DELIVERED = "delivered"
CANCELLED = "cancelled"
RETURNED = "returned"
REFUND_PENDING = "refund_pending"
REFUNDED = "refunded"
ORDER_STATUSES = (PLACED, PAID, SHIPPED, DELIVERED, CANCELLED, RETURNED, REFUND_PENDING, REFUNDED)
BEFORE_SHIPMENT = (PLACED, PAID)


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, index=True)  # stored lower-case
    name: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    postcode: Mapped[str] = mapped_column(String(20), default="")  # of the default address
    # Consent to keep preferences and use purchase history for personalization.
    consent_personalization: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_updated_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    orders: Mapped[list[Order]] = relationship(back_populates="customer", order_by="Order.placed_at.desc()")
    profile: Mapped[CrmProfile | None] = relationship(back_populates="customer", uselist=False)
    preferences: Mapped[list[Preference]] = relationship(back_populates="customer", cascade="all, delete-orphan")

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.strip() else ""


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True, index=True)  # "NW-100234"
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), index=True)
    email: Mapped[str] = mapped_column(String(254), index=True)  # who ordered (guests have no customer)
    status: Mapped[str] = mapped_column(String(20), index=True, default=PLACED)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    subtotal: Mapped[float] = mapped_column(MONEY, default=0)
    shipping_fee: Mapped[float] = mapped_column(MONEY, default=0)
    total: Mapped[float] = mapped_column(MONEY, default=0)
    shipping_method: Mapped[str] = mapped_column(String(40), default="Standard")
    ship_name: Mapped[str] = mapped_column(String(200), default="")
    ship_line1: Mapped[str] = mapped_column(String(200), default="")
    ship_line2: Mapped[str] = mapped_column(String(200), default="")
    ship_city: Mapped[str] = mapped_column(String(100), default="")
    ship_postcode: Mapped[str] = mapped_column(String(20), default="")
    ship_country: Mapped[str] = mapped_column(String(2), default="US")
    placed_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now(), onupdate=func.now())

    customer: Mapped[Customer | None] = relationship(back_populates="orders")
    items: Mapped[list[OrderItem]] = relationship(back_populates="order", cascade="all, delete-orphan",
                                                  order_by="OrderItem.id")
    shipment: Mapped[Shipment | None] = relationship(back_populates="order", uselist=False,
                                                     cascade="all, delete-orphan")
    returns: Mapped[list[Return]] = relationship(back_populates="order", cascade="all, delete-orphan",
                                                 order_by="Return.id")
    refunds: Mapped[list[Refund]] = relationship(back_populates="order", cascade="all, delete-orphan",
                                                 order_by="Refund.id")

    @property
    def address_lines(self) -> list[str]:
        city = " ".join(p for p in [self.ship_postcode, self.ship_city] if p)
        return [p for p in [self.ship_name, self.ship_line1, self.ship_line2, city, self.ship_country] if p]


class OrderItem(Base):
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="SET NULL"), index=True)
    sku: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    size: Mapped[str] = mapped_column(String(20), default="")
    color: Mapped[str] = mapped_column(String(60), default="")
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price: Mapped[float] = mapped_column(MONEY)
    returned_quantity: Mapped[int] = mapped_column(Integer, default=0)

    order: Mapped[Order] = relationship(back_populates="items")

    @property
    def total(self) -> float:
        return round(self.unit_price * self.quantity, 2)


class Shipment(Base):
    __tablename__ = "shipments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), unique=True)
    carrier: Mapped[str] = mapped_column(String(60))
    tracking_number: Mapped[str] = mapped_column(String(60))
    shipped_at: Mapped[datetime] = mapped_column(DateTime)
    expected_delivery: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    order: Mapped[Order] = relationship(back_populates="shipment")


class Return(Base):
    """A return (RMA) of some items of an order."""

    __tablename__ = "returns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rma: Mapped[str] = mapped_column(String(32), unique=True, index=True)  # "RMA-7F3K2Q"
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="requested")  # requested|received|refunded
    reason: Mapped[str] = mapped_column(String(60))
    comment: Mapped[str] = mapped_column(Text, default="")
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{"item_id", "quantity"}]
    amount: Mapped[float] = mapped_column(MONEY, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(120), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    received_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    order: Mapped[Order] = relationship(back_populates="returns")


class Refund(Base):
    """Money going back to the shopper, after a cancellation or a return."""

    __tablename__ = "refunds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    return_id: Mapped[int | None] = mapped_column(ForeignKey("returns.id", ondelete="SET NULL"), nullable=True)
    amount: Mapped[float] = mapped_column(MONEY)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|refunded
    reason: Mapped[str] = mapped_column(String(20))  # cancellation|return
    created_at: Mapped[datetime] = mapped_column(DateTime)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    order: Mapped[Order] = relationship(back_populates="refunds")


class CrmProfile(Base):
    """What the shop knows about a customer's value: RFM scores and segment, from their orders."""

    __tablename__ = "crm_profiles"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    segment: Mapped[str] = mapped_column(String(30), default="new")
    recency_score: Mapped[int] = mapped_column(Integer, default=0)  # 1..5, 5 = bought most recently
    frequency_score: Mapped[int] = mapped_column(Integer, default=0)
    monetary_score: Mapped[int] = mapped_column(Integer, default=0)
    orders_count: Mapped[int] = mapped_column(Integer, default=0)
    lifetime_value: Mapped[float] = mapped_column(MONEY, default=0)
    last_order_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    computed_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    customer: Mapped[Customer] = relationship(back_populates="profile")


class Preference(Base):
    """A preference the shopper stated (size, brand, color, budget), kept only with consent."""

    __tablename__ = "preferences"
    __table_args__ = (UniqueConstraint("customer_id", "kind", "value", name="uq_preference"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # size|brand|color|budget
    value: Mapped[str] = mapped_column(String(120))
    source: Mapped[str] = mapped_column(String(20), default="chat")
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    customer: Mapped[Customer] = relationship(back_populates="preferences")


class OrderAccessGrant(Base):
    """A guest conversation that proved an order is theirs (order number plus email or postcode)."""

    __tablename__ = "order_access_grants"
    __table_args__ = (UniqueConstraint("conversation_id", "order_id", name="uq_order_grant"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(128), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    granted_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class VerificationThrottle(Base):
    """Failed order-verification attempts per key (a conversation, a client address)."""

    __tablename__ = "verification_throttle"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
