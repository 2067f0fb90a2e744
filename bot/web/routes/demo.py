"""Demo mode only (``SHOP_DEMO_MODE``): the demo customers, and signed tokens to sign in as one of them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from bot.config import Settings
from bot.db import session_scope
from bot.demo.orders import demo_customers
from bot.ids import MAX_ID
from bot.shop.identity import issue_token, jwt_secret

router = APIRouter()


class DemoSignIn(BaseModel):
    customer_id: int = Field(ge=1, le=MAX_ID, description="One of `GET /api/demo/customers`.")


def demo_list(settings: Settings) -> list[dict[str, Any]]:
    """The demo customers; 404 when demo mode is off."""
    if not settings.demo_mode:
        raise HTTPException(404, "Not Found")
    with session_scope(settings.database_url) as session:
        return [{"id": c.id, "name": c.name, "email": c.email, "note": c.note, "order_number": c.order_number,
                 "status": c.status} for c in demo_customers(session) if c.id is not None]


@router.get("/api/demo/customers", tags=["demo"], responses={404: {"description": "Demo mode is off."}})
def demo_customer_list(request: Request) -> dict[str, Any]:
    """Demo mode only: the customers the demo page can sign in as."""
    return {"customers": demo_list(request.app.state.settings)}


@router.post("/api/demo/token", tags=["demo"],
             responses={404: {"description": "Demo mode is off, or no such demo customer."}})
def demo_token(body: DemoSignIn, request: Request) -> dict[str, Any]:
    """Demo mode only: a signed token for one of the demo customers, as a shop would issue it."""
    settings: Settings = request.app.state.settings
    customer = next((c for c in demo_list(settings) if c["id"] == body.customer_id), None)
    if customer is None:
        raise HTTPException(404, "No such demo customer.")
    token = issue_token(customer["id"], settings.demo_token_ttl_s, jwt_secret(settings), settings.jwt_issuer)
    return {"token": token, "expires_in": settings.demo_token_ttl_s, "customer": customer}
