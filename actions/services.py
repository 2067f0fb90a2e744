"""The ``bot`` services the actions share, created once per action-server process."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy.orm import sessionmaker

from bot.config import get_settings
from bot.db import get_engine, migrate
from bot.policy import ShopPolicy, get_policy
from bot.search.service import ProductSearch


@lru_cache(maxsize=1)
def product_search() -> ProductSearch:
    settings = get_settings()
    migrate(settings.database_url)
    return ProductSearch(sessionmaker(bind=get_engine(settings.database_url)), settings.search_index_dir,
                         query_cache=settings.search_query_cache)


def policy() -> ShopPolicy:
    return get_policy()


def public_url(path: str) -> str:
    return f"{get_settings().public_url.rstrip('/')}{path}"
