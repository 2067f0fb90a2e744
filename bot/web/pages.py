"""Server-rendered pages of the demo shop (product page, checkout); all data is HTML-escaped."""

from __future__ import annotations

from html import escape

from bot.catalog.views import ProductView
from bot.shop.cart import CartSummary, ShippingQuote


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{escape(title)}</title>"
            "<link rel=\"stylesheet\" href=\"/static/pages.css\"></head>"
            "<body><header><a href=\"/\">Northwind Outfitters</a></header>"
            f"<main>{body}</main><script src=\"/widget.js\" defer></script></body></html>")


def product_page(p: ProductView) -> str:
    sizes = f"<p>Sizes: {escape(', '.join(p.sizes))}</p>" if p.sizes else ""
    price = "Price on request" if p.price is None else f"${p.price:,.2f}"  # None: imported without a price
    body = (f"<div class=\"card\"><img src=\"/media/products/{p.id}.svg\" alt=\"\" width=\"320\" height=\"240\">"
            f"<h1>{escape(p.title)}</h1><p>{escape(p.brand)} · {escape(p.category)}</p>"
            f"<p class=\"price\">{price}</p><p>★ {p.rating:.1f} ({p.rating_count} reviews)</p>"
            f"<p>{escape(p.description)}</p>{sizes}</div>")
    return _page(p.title, body)


def _money(amount: float, currency: str) -> str:
    symbol = {"USD": "$", "EUR": "€", "GBP": "£", "INR": "₹"}.get(currency)
    return f"{symbol}{amount:,.2f}" if symbol else f"{amount:,.2f} {escape(currency)}"


_DEMO_SCRIPT = '<script src="/static/checkout.js" defer></script>'


def checkout_page(summary: CartSummary, shipping: ShippingQuote) -> str:
    """Lines, totals and standard shipping per the policy, with a "Place order" that is clearly a demo."""
    if not summary.lines:
        return _page("Checkout", "<div class=\"card\"><h1>Checkout</h1><p>Your cart is empty.</p></div>")
    cur = summary.currency
    rows = "".join(
        f"<tr><td>{escape(line.title)}</td><td>{escape(line.size or '-')}</td><td>{escape(line.color or '-')}</td>"
        f"<td>{line.quantity}</td><td>{_money(line.unit_price, cur)}</td><td>{_money(line.total, cur)}</td></tr>"
        for line in summary.lines)
    fee = "Free" if shipping.fee == 0 else _money(shipping.fee, cur)
    hint = ("" if shipping.fee == 0 else
            f"<p>Add {_money(shipping.missing(summary.total), cur)} more for free {escape(shipping.method.lower())} "
            f"shipping (free over {_money(shipping.free_over, cur)}).</p>")
    body = (f"<div class=\"card\"><h1>Checkout</h1><table><tr><th>Item</th><th>Size</th><th>Color</th><th>Qty</th>"
            f"<th>Price</th><th>Total</th></tr>{rows}</table>"
            f"<p>Subtotal: <span data-testid=\"subtotal\">{_money(summary.total, cur)}</span></p>"
            f"<p>{escape(shipping.method)} shipping: <span data-testid=\"shipping\">{fee}</span></p>{hint}"
            f"<p class=\"price\">Total: <span data-testid=\"total\">{_money(summary.total + shipping.fee, cur)}"
            f"</span></p><p><strong>Demo shop:</strong> payment is where your shop's own checkout takes over.</p>"
            f"<button type=\"button\" id=\"place-order\" class=\"btn\">Place order (demo)</button>"
            f"<p id=\"demo-notice\" role=\"status\" tabindex=\"-1\" hidden>This is a demo shop: no order was placed "
            f"and nothing was charged.</p></div>{_DEMO_SCRIPT}")
    return _page("Checkout", body)


def checkout_not_found() -> str:
    """For a checkout link that is not valid; it says nothing about whether a cart exists."""
    return _page("Checkout", "<div class=\"card\"><h1>Checkout</h1><p>This checkout link isn't valid. Open your "
                             "cart in the chat and use its checkout link.</p></div>")
