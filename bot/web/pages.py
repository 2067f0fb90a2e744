"""Server-rendered pages of the demo shop (product page, checkout); all data is HTML-escaped."""

from __future__ import annotations

from html import escape

from bot.search.service import ProductView
from bot.shop.cart import CartSummary

_STYLE = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#1d2433;background:#f7f8fb}
header{background:#1d2433;color:#fff;padding:14px 24px}header a{color:#fff;text-decoration:none;font-weight:600}
main{max-width:860px;margin:32px auto;padding:0 20px}.card{background:#fff;border-radius:12px;padding:24px;
box-shadow:0 2px 10px rgba(0,0,0,.06)}img{max-width:100%;border-radius:12px}table{width:100%;border-collapse:collapse}
td,th{padding:8px;border-bottom:1px solid #eee;text-align:left}.price{font-size:1.4em;font-weight:700}"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><header><a href=\"/\">Northwind Outfitters</a></header>"
            f"<main>{body}</main><script src=\"/widget.js\" defer></script></body></html>")


def product_page(p: ProductView) -> str:
    sizes = f"<p>Sizes: {escape(', '.join(p.sizes))}</p>" if p.sizes else ""
    price = "Price on request" if p.price is None else f"${p.price:,.2f}"  # None: imported without a price
    body = (f"<div class=\"card\"><img src=\"/media/products/{p.id}.svg\" alt=\"\" width=\"320\" height=\"240\">"
            f"<h1>{escape(p.title)}</h1><p>{escape(p.brand)} · {escape(p.category)}</p>"
            f"<p class=\"price\">{price}</p><p>★ {p.rating:.1f} ({p.rating_count} reviews)</p>"
            f"<p>{escape(p.description)}</p>{sizes}</div>")
    return _page(p.title, body)


def checkout_page(summary: CartSummary) -> str:
    if not summary.lines:
        return _page("Checkout", "<div class=\"card\"><h1>Checkout</h1><p>Your cart is empty.</p></div>")
    rows = "".join(
        f"<tr><td>{escape(line.title)}</td><td>{escape(line.size or '-')}</td><td>{line.quantity}</td>"
        f"<td>${line.total:,.2f}</td></tr>" for line in summary.lines)
    body = (f"<div class=\"card\"><h1>Checkout</h1><table><tr><th>Item</th><th>Size</th><th>Qty</th><th>Total</th>"
            f"</tr>{rows}</table><p class=\"price\">Total: ${summary.total:,.2f}</p>"
            f"<p>This is the demo shop: payment is where your shop's own checkout takes over.</p></div>")
    return _page("Checkout", body)
