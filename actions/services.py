"""The ``bot`` services the actions share, created once per action-server process: the database (migrated
once), product search, order service, the shop's policy file."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy.orm import sessionmaker

from bot.config import get_settings
from bot.db import get_engine, migrate
from bot.knowledge.shop_policy_file import ShopPolicy, get_policy
from bot.search.service import ProductSearch
from bot.shop.orders import OrderService, get_order_service


@lru_cache(maxsize=1)
def database() -> str:
    """The URL of the shop's database, its schema brought to the newest revision once per process (the first
    action that needs it). ``bot.db.session_scope()`` then opens sessions on it."""
    url = get_settings().database_url
    migrate(url)
    return url


@lru_cache(maxsize=1)
def product_search() -> ProductSearch:
    settings = get_settings()
    url = database()
    return ProductSearch(sessionmaker(bind=get_engine(url)), settings.search_index_dir,
                         query_cache=settings.search_query_cache)


@lru_cache(maxsize=1)
def order_service() -> OrderService:
    return get_order_service(database())


def policy() -> ShopPolicy:
    return get_policy()


def public_url(path: str) -> str:
    return f"{get_settings().public_url.rstrip('/')}{path}"
