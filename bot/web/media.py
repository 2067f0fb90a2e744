"""Generated placeholder product images (SVG), so cards look like a shop without image files."""

from __future__ import annotations

import hashlib
from xml.sax.saxutils import escape

PALETTE = {
    "black": "#2b2b2b", "white": "#f4f4f4", "navy": "#1f2f5a", "blue": "#3b6fd8", "red": "#c8372d",
    "green": "#3c8c4a", "grey": "#8a8f98", "beige": "#d8c7a6", "brown": "#7a5034", "pink": "#e889aa",
    "yellow": "#e9c340", "olive": "#6f7440", "silver": "#c0c4cc", "graphite": "#4a4d52",
}


def product_svg(title: str, category: str, color: str) -> str:
    fill = PALETTE.get(color.lower()) or "#" + hashlib.sha1(title.encode()).hexdigest()[:6]
    department = category.split(" > ", 1)[0]
    initial = escape((department or "P")[:1].upper())
    text_color = "#222" if fill in ("#f4f4f4", "#d8c7a6", "#e9c340", "#c0c4cc") else "#fff"
    label = escape(category.split(" > ")[-1] if category else "Product")
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240" viewBox="0 0 320 240">'
        f'<rect width="320" height="240" rx="12" fill="{fill}"/>'
        '<circle cx="160" cy="105" r="62" fill="rgba(255,255,255,0.18)"/>'
        f'<text x="160" y="128" font-family="system-ui,sans-serif" font-size="64" font-weight="700" '
        f'fill="{text_color}" text-anchor="middle">{initial}</text>'
        f'<text x="160" y="212" font-family="system-ui,sans-serif" font-size="18" fill="{text_color}" '
        f'text-anchor="middle">{label}</text></svg>'
    )
