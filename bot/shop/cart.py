"""A shopper's cart: lines of product, size, color and quantity under one cart key.

A product with variants (``ProductVariant``, from the Shopify import) is sold by variant: a line holds
the variant's own size and color, and is priced, stocked and labelled with its SKU from the variant;
a size or color that is out of stock is refused. A product without variants sells as one item at its
own price and stock.

A guest's cart is keyed by the conversation id; a signed-in shopper's by ``customer:<id>``, so it
follows them across devices. When a guest signs in, :func:`merge` moves the guest cart into the
customer's. The checkout page is reached through :func:`checkout_reference`, an HMAC-signed
reference to the cart key, so nobody can open another shopper's cart by guessing keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, UniqueConstraint, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from bot.catalog.tables import Product, ProductVariant
from bot.db import Base

MAX_QUANTITY = 20
CUSTOMER_PREFIX = "customer:"
REFERENCE = re.compile(r"^[A-Za-z0-9_-]{4,400}\.[A-Za-z0-9_-]{22}$")


class CartItem(Base):
    __tablename__ = "cart_items"
    __table_args__ = (UniqueConstraint("cart_key", "product_id", "size", "color", name="uq_cart_line"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cart_key: Mapped[str] = mapped_column(String(120), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    size: Mapped[str] = mapped_column(String(20), default="")
    color: Mapped[str] = mapped_column(String(60), default="")
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    added_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    product: Mapped[Product] = relationship(lazy="joined")


class CartError(ValueError):
    """A cart change that cannot be made; the message is safe to show the shopper."""


class NotEnoughStock(CartError):
    """More than the stock allows; ``available`` is how many the change could still have."""

    def __init__(self, message: str, available: int) -> None:
        super().__init__(message)
        self.available = max(0, available)


def no_price_text(title: str) -> str:
    """Why a product without a price (imported without one: "Price on request") is not added."""
    return f"Sorry, {title} has no online price (price on request), so it can't be added to the cart."


def customer_cart_key(customer_id: int) -> str:
    return f"{CUSTOMER_PREFIX}{customer_id}"


def cart_key(conversation_id: str, customer_id: int | None = None) -> str:
    """The cart of a signed-in customer, else the conversation's (guest) cart."""
    return customer_cart_key(customer_id) if customer_id else conversation_id


def _unique(values: Any) -> list[str]:
    return list(dict.fromkeys(str(v) for v in values if str(v).strip()))


def product_sizes(product: Product, in_stock: bool = True) -> list[str]:
    """The sizes a shopper chooses between: of a product with variants those in stock (every size the
    variants have when ``in_stock`` is False), else the product's sizes."""
    if not product.variants:
        return list(product.sizes or [])
    return _unique(v.size for v in product.variants if not in_stock or v.stock > 0)


def product_colors(product: Product, size: str = "") -> list[str]:
    """The colors a shopper chooses between; [] for one color. Of a product with variants: the colors in
    stock (in ``size``, when given)."""
    if product.variants:
        wanted = size.strip().lower()
        unique = _unique(v.color for v in product.variants if v.stock > 0 and (not wanted or v.size.lower() == wanted))
    else:
        unique = _unique((product.attributes or {}).get("colors") or [])
    return unique if len(unique) > 1 else []


def pick(value: str, options: list[str]) -> str | None:
    """``value`` spelled as in ``options`` (case-insensitive), or None."""
    wanted = value.strip().lower()
    return next((o for o in options if o.lower() == wanted), None)


@dataclass(frozen=True)
class CartLine:
    id: int
    product_id: int
    title: str
    size: str
    color: str
    quantity: int
    unit_price: float
    currency: str
    stock: int
    sku: str = ""  # the variant's SKU for a product with variants, else the product's

    @property
    def total(self) -> float:
        return round(self.unit_price * self.quantity, 2)

    @property
    def variant(self) -> str:
        """"size M, Red", or ''."""
        return ", ".join(p for p in [f"size {self.size}" if self.size else "", self.color] if p)


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

    def find(self, product_id: int, size: str | None = None, color: str | None = None) -> list[CartLine]:
        """Lines of a product, narrowed by size and color when given."""
        return [line for line in self.lines if line.product_id == product_id
                and (not size or line.size.lower() == size.lower())
                and (not color or line.color.lower() == color.lower())]


@dataclass(frozen=True)
class ShippingQuote:
    method: str
    fee: float
    free_over: float

    def missing(self, subtotal: float) -> float:
        """How much more the shopper would spend for free shipping (0 when it is free already)."""
        return max(0.0, round(self.free_over - subtotal, 2))


def shipping_quote(subtotal: float, shipping_policy: dict[str, Any]) -> ShippingQuote:
    """Standard shipping for a cart, per the policy file: free from ``free_over``, else its price."""
    methods = shipping_policy.get("methods") or []
    standard = next((m for m in methods if str(m.get("name", "")).lower() == "standard"), methods[0] if methods else {})
    free_over = float(shipping_policy.get("free_over", 0))
    fee = 0.0 if subtotal >= free_over else float(standard.get("price", 0))
    return ShippingQuote(str(standard.get("name", "Standard")), round(fee, 2), free_over)


def _product(session: Session, product_id: int) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise CartError("That product is no longer in the catalog.")
    if product.price is None:
        raise CartError(no_price_text(product.title))
    return product


def _variant(product: Product, size: str, color: str) -> tuple[str, str]:
    """The size and color as the catalog spells them; CartError when missing or not offered."""
    if product.sizes:
        if not size:
            raise CartError(f"Which size of {product.title}? It comes in {', '.join(product.sizes)}.")
        canonical = pick(size, product.sizes)
        if canonical is None:
            raise CartError(f"{product.title} comes in {', '.join(product.sizes)}.")
        size = canonical
    else:
        size = ""
    colors = product_colors(product)
    if colors:
        if not color:
            raise CartError(f"Which color of {product.title}? It comes in {', '.join(colors)}.")
        canonical = pick(color, colors)
        if canonical is None:
            raise CartError(f"{product.title} comes in {', '.join(colors)}.")
        color = canonical
    else:
        color = ""
    return size, color


def _label(title: str, size: str, color: str) -> str:
    """"Trail Parka (size M, Blue)", or the title alone."""
    variant = ", ".join(p for p in [f"size {size}" if size else "", color] if p)
    return f"{title} ({variant})" if variant else title


def _sold_variant(product: Product, size: str, color: str) -> ProductVariant:
    """The variant of ``product`` in this size and color that the cart can sell; CartError (NotEnoughStock
    for one that is out of stock) says what to choose instead."""
    title = product.title
    variants = list(product.variants)
    every_size = product_sizes(product, in_stock=False)
    if every_size:
        in_stock = product_sizes(product)
        offer = f"In stock: {', '.join(in_stock)}." if in_stock else "No size is in stock right now."
        if not size:
            raise CartError(f"Which size of {title}? {offer}")
        canonical = pick(size, every_size)
        if canonical is None:
            raise CartError(f"{title} doesn't come in size {size}. {offer}")
        size = canonical
        variants = [v for v in variants if v.size == size]
    every_color = _unique(v.color for v in variants)
    if color and len(every_color) > 1:
        canonical = pick(color, every_color)
        if canonical is None:
            raise CartError(f"{_label(title, size, '')} comes in {', '.join(every_color)}.")
        variants = [v for v in variants if v.color == canonical]
        color = canonical
    available = [v for v in variants if v.stock > 0]
    if not available:  # say what is in stock instead: the other colors in this size, else the sizes
        colors_here = _unique(v.color for v in product.variants if v.stock > 0 and (not size or v.size == size))
        what = (f" In stock{f' in size {size}' if size else ''}: {', '.join(colors_here)}." if color and colors_here
                else f" In stock: {', '.join(product_sizes(product))}." if every_size and product_sizes(product)
                else "")
        raise NotEnoughStock(f"Sorry, {_label(title, size, color)} is out of stock.{what}", 0)
    colors = _unique(v.color for v in available)
    if len(colors) > 1 and not color:
        raise CartError(f"Which color of {_label(title, size, '')}? In stock: {', '.join(colors)}.")
    variant = available[0]
    if variant.price is None:
        raise CartError(no_price_text(_label(title, variant.size, variant.color)))
    return variant


def line_variant(product: Product, size: str, color: str) -> ProductVariant | None:
    """The variant a cart line holds: the one with its size and color; for a line added before the
    product had variants, one in its size (and color, when the line has one), preferably in stock."""
    exact = next((v for v in product.variants if v.size == size and v.color == color), None)
    if exact is not None:
        return exact
    near = [v for v in product.variants
            if v.size.lower() == size.lower() and (not color or v.color.lower() == color.lower())]
    return next((v for v in near if v.stock > 0), near[0] if near else None)


def _line_stock(product: Product, size: str, color: str) -> int:
    if not product.variants:
        return product.stock
    variant = line_variant(product, size, color)
    return variant.stock if variant is not None else 0


def _stock_error(title: str, stock: int, in_cart: int) -> NotEnoughStock:
    if stock <= 0:
        return NotEnoughStock(f"Sorry, {title} is out of stock.", 0)
    if in_cart >= stock:
        return NotEnoughStock(f"Only {stock} of {title} left in stock, and they're all in your cart already.", 0)
    return NotEnoughStock(f"Only {stock} of {title} left in stock.", stock - in_cart)


def add_item(session: Session, cart_key: str, product_id: int, quantity: int = 1, size: str = "",
             color: str = "") -> CartSummary:
    """Add ``quantity`` of a product (in a size and color when it has them); stock and limits are checked."""
    if not 1 <= quantity <= MAX_QUANTITY:
        raise CartError(f"You can add between 1 and {MAX_QUANTITY} of an item.")
    product = _product(session, product_id)
    if product.variants:
        variant = _sold_variant(product, size, color)
        size, color, stock = variant.size, variant.color, variant.stock
        title = _label(product.title, size, color)
    else:
        size, color = _variant(product, size, color)
        stock, title = product.stock, product.title
    line = session.scalar(select(CartItem).where(CartItem.cart_key == cart_key, CartItem.product_id == product_id,
                                                 CartItem.size == size, CartItem.color == color))
    in_cart = line.quantity if line else 0
    wanted = quantity + in_cart
    if wanted > stock:
        raise _stock_error(title, stock, in_cart)
    if wanted > MAX_QUANTITY:
        raise NotEnoughStock(f"You can have at most {MAX_QUANTITY} of {product.title} in your cart.",
                             MAX_QUANTITY - in_cart)
    if line is None:
        session.add(CartItem(cart_key=cart_key, product_id=product_id, quantity=quantity, size=size, color=color))
    else:
        line.quantity = wanted
    session.flush()
    return summary(session, cart_key)


def _line(session: Session, cart_key: str, line_id: int) -> CartItem:
    item = session.scalar(select(CartItem).where(CartItem.id == line_id, CartItem.cart_key == cart_key))
    if item is None:  # also another cart's line: a cart only ever touches its own lines
        raise CartError("That item is not in your cart any more.")
    return item


def set_quantity(session: Session, cart_key: str, line_id: int, quantity: int) -> CartSummary:
    """Change a line's quantity; 0 removes it."""
    if not 0 <= quantity <= MAX_QUANTITY:
        raise CartError(f"The quantity can be between 0 and {MAX_QUANTITY}.")
    item = _line(session, cart_key, line_id)
    stock = _line_stock(item.product, item.size, item.color)
    title = _label(item.product.title, item.size, item.color) if item.product.variants else item.product.title
    if quantity == 0:
        session.delete(item)
    elif quantity > stock:
        if stock <= 0:
            raise NotEnoughStock(f"Sorry, {title} is out of stock now.", 0)
        raise NotEnoughStock(f"Only {stock} of {title} left in stock.", stock)
    else:
        item.quantity = quantity
    session.flush()
    return summary(session, cart_key)


def remove_line(session: Session, cart_key: str, line_id: int) -> CartSummary:
    session.delete(_line(session, cart_key, line_id))
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


def merge(session: Session, from_key: str, to_key: str) -> CartSummary:
    """Move every line of ``from_key`` into ``to_key`` (a guest cart into the customer's on sign-in).

    Quantities of the same product, size and color add up, capped at :data:`MAX_QUANTITY` and the
    stock (a line already in the target cart is never reduced). The source cart is emptied, so
    merging again changes nothing.
    """
    if from_key == to_key:
        return summary(session, to_key)
    moving = session.scalars(select(CartItem).where(CartItem.cart_key == from_key).order_by(CartItem.id)).all()
    for item in moving:
        product_id, size, color, added_at = item.product_id, item.size, item.color, item.added_at
        target = session.scalar(select(CartItem).where(
            CartItem.cart_key == to_key, CartItem.product_id == product_id, CartItem.size == size,
            CartItem.color == color))
        have = target.quantity if target else 0
        quantity = max(have, min(have + item.quantity, MAX_QUANTITY, _line_stock(item.product, size, color)))
        session.delete(item)
        session.flush()
        if target is not None:
            target.quantity = quantity
        elif quantity > 0:
            session.add(CartItem(cart_key=to_key, product_id=product_id, size=size, color=color,
                                 quantity=quantity, added_at=added_at))
    session.flush()
    return summary(session, to_key)


def has_items(session: Session, cart_key: str) -> bool:
    return session.scalar(select(CartItem.id).where(CartItem.cart_key == cart_key).limit(1)) is not None


def _cart_line(item: CartItem) -> CartLine | None:
    product = item.product
    if not product.variants:
        if product.price is None:
            return None
        return CartLine(item.id, item.product_id, product.title, item.size, item.color, item.quantity,
                        float(product.price), product.currency, product.stock, product.sku)
    variant = line_variant(product, item.size, item.color)
    if variant is None or variant.price is None:
        return None
    return CartLine(item.id, item.product_id, product.title, item.size, item.color, item.quantity,
                    float(variant.price), product.currency, variant.stock, variant.sku)


def summary(session: Session, cart_key: str) -> CartSummary:
    """The cart's lines, each at its variant's price and stock for a product with variants. A product
    whose price (or variant) was removed after it went in the cart (a catalog re-import) cannot be sold,
    so it is left out rather than counted at a made-up price."""
    items = session.scalars(select(CartItem).where(CartItem.cart_key == cart_key).order_by(CartItem.id)).all()
    return CartSummary([line for item in items if (line := _cart_line(item)) is not None])


# --------------------------------------------------------------------------- checkout links


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _signature(cart_key: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), b"checkout-link\x00" + cart_key.encode(), hashlib.sha256).digest()
    return _b64(digest)[:22]  # 132 bits


def checkout_reference(cart_key: str, secret: str) -> str:
    """An unguessable reference to a cart for its checkout link: the key and its HMAC."""
    return f"{_b64(cart_key.encode())}.{_signature(cart_key, secret)}"


def cart_key_from_reference(reference: str, secret: str) -> str | None:
    """The cart key a reference names, or None when it was not made with ``secret`` (forged, altered)."""
    if not REFERENCE.match(reference or ""):
        return None
    encoded, signature = reference.split(".")
    try:
        key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return key if hmac.compare_digest(signature, _signature(key, secret)) else None
