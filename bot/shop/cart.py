"""A shopper's cart, keyed by conversation until customer identity arrives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, UniqueConstraint, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from bot.catalog.models import Product
from bot.db import Base

MAX_QUANTITY = 20


class CartItem(Base):
    __tablename__ = "cart_items"
    __table_args__ = (UniqueConstraint("cart_key", "product_id", "size", name="uq_cart_line"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cart_key: Mapped[str] = mapped_column(String(120), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    size: Mapped[str] = mapped_column(String(20), default="")
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    added_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    product: Mapped[Product] = relationship(lazy="joined")


class CartError(ValueError):
    """A cart change that cannot be made; the message is safe to show the shopper."""


def no_price_text(title: str) -> str:
    """Why a product without a price (imported without one: "Price on request") is not added."""
    return f"Sorry, {title} has no online price (price on request), so it can't be added to the cart."


@dataclass(frozen=True)
class CartLine:
    product_id: int
    title: str
    size: str
    quantity: int
    unit_price: float
    currency: str

    @property
    def total(self) -> float:
        return round(self.unit_price * self.quantity, 2)


@dataclass(frozen=True)
class CartSummary:
    lines: list[CartLine]

    @property
    def total(self) -> float:
        return round(sum(line.total for line in self.lines), 2)

    @property
    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)

    @property
    def currency(self) -> str:
        return self.lines[0].currency if self.lines else "USD"


def add_item(session: Session, cart_key: str, product_id: int, quantity: int = 1, size: str = "") -> CartSummary:
    if not 1 <= quantity <= MAX_QUANTITY:
        raise CartError(f"You can add between 1 and {MAX_QUANTITY} of an item.")
    product = session.get(Product, product_id)
    if product is None:
        raise CartError("That product is no longer in the catalog.")
    if product.price is None:
        raise CartError(no_price_text(product.title))
    if product.sizes and size and size not in product.sizes:
        raise CartError(f"{product.title} comes in {', '.join(product.sizes)}.")
    line = session.scalar(
        select(CartItem).where(CartItem.cart_key == cart_key, CartItem.product_id == product_id, CartItem.size == size)
    )
    wanted = quantity + (line.quantity if line else 0)
    if wanted > product.stock:
        if product.stock == 0:
            raise CartError(f"Sorry, {product.title} is out of stock.")
        raise CartError(f"Only {product.stock} of {product.title} left in stock.")
    if line is None:
        session.add(CartItem(cart_key=cart_key, product_id=product_id, quantity=quantity, size=size))
    else:
        line.quantity = wanted
    session.flush()
    return summary(session, cart_key)


def remove_item(session: Session, cart_key: str, product_id: int | None = None) -> CartSummary:
    """Remove one product's lines, or everything when ``product_id`` is None."""
    stmt = delete(CartItem).where(CartItem.cart_key == cart_key)
    if product_id is not None:
        stmt = stmt.where(CartItem.product_id == product_id)
    session.execute(stmt)
    session.flush()
    return summary(session, cart_key)


def summary(session: Session, cart_key: str) -> CartSummary:
    """The cart's lines. A product whose price was removed after it went in the cart (a catalog
    re-import) cannot be sold, so it is left out rather than counted at a made-up price."""
    items = session.scalars(select(CartItem).where(CartItem.cart_key == cart_key).order_by(CartItem.id)).all()
    return CartSummary(
        [
            CartLine(i.product_id, i.product.title, i.size, i.quantity, float(i.product.price), i.product.currency)
            for i in items
            if i.product.price is not None
        ]
    )
