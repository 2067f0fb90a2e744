"""The demo shop: its page, the widget's script and styles, product pages and pictures, and the checkout page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy.orm import Session

from bot.catalog.tables import Product
from bot.catalog.views import ProductView
from bot.config import Settings
from bot.db import get_engine
from bot.knowledge.shop_policy_file import get_policy
from bot.shop import cart
from bot.shop.identity import jwt_secret
from bot.web import pages
from bot.web.media import product_svg
from bot.web.params import IdPath
from bot.web.static_files import STATIC, asset

router = APIRouter()
WIDGET_ASSETS = {"widget.js": "application/javascript", "widget.css": "text/css"}
ANY_ORIGIN = {"Access-Control-Allow-Origin": "*"}  # the widget loads on the shop's own pages, any origin
SHOP_ASSETS = {"shop.css": "text/css", "shop.js": "application/javascript", "pages.css": "text/css",
               "checkout.js": "application/javascript"}


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


@router.get("/", response_class=FileResponse, include_in_schema=False)
async def shop_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/widget.js", include_in_schema=False)
async def widget() -> FileResponse:
    return asset("widget.js", WIDGET_ASSETS, ANY_ORIGIN)


@router.get("/widget.css", include_in_schema=False)
async def widget_css() -> FileResponse:
    return asset("widget.css", WIDGET_ASSETS, ANY_ORIGIN)


@router.get("/static/{name}", include_in_schema=False)
async def shop_asset(name: str) -> FileResponse:
    """The demo shop's own styles and scripts (a strict CSP allows nothing inline)."""
    return asset(name, SHOP_ASSETS)


def _product(settings: Settings, product_id: int) -> Product:
    with Session(get_engine(settings.database_url)) as session:
        product = session.get(Product, product_id)
        if product is None:
            raise HTTPException(404, "no such product")
        session.expunge(product)
        return product


@router.get("/media/products/{product_id}.svg", tags=["shop"], response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}, "description": "The product's picture."},
                       404: {"description": "No such product."}})
def product_image(product_id: IdPath, request: Request) -> Response:
    p = _product(_settings(request), product_id)
    return Response(product_svg(p.title, p.category, p.color), media_type="image/svg+xml",
                    headers={"Cache-Control": "public, max-age=86400"})


@router.get("/products/{product_id}", response_class=HTMLResponse, tags=["shop"],
            responses={404: {"description": "No such product."}})
def product_page(product_id: IdPath, request: Request) -> str:
    return pages.product_page(ProductView.of(_product(_settings(request), product_id)))


@router.get("/checkout", response_class=HTMLResponse, tags=["shop"],
            responses={404: {"description": "The cart reference is forged, expired or unknown."}})
def checkout(reference: Annotated[str, Query(alias="cart", max_length=600)], request: Request) -> HTMLResponse:
    """The demo shop's checkout page, for a signed cart reference; 404 for anything forged or guessed."""
    settings = _settings(request)
    key = cart.cart_key_from_reference(reference, jwt_secret(settings))
    if key is None:
        return HTMLResponse(pages.checkout_not_found(), status_code=404)
    with Session(get_engine(settings.database_url)) as session:
        summary = cart.summary(session, key)
    shipping = cart.shipping_quote(summary.total, get_policy(settings.policy_file).fact("shipping"))
    return HTMLResponse(pages.checkout_page(summary, shipping))
