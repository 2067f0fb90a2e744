"""Start-up checks of production mode (``SHOP_ENV=production``).

The gateway and the action server refuse to start with settings that are only fit for a laptop:
the development JWT secret, no token on Rasa's HTTP API or the action server, no list of the pages that
may embed the widget, demo mode, or a SQLite database.
"""

from __future__ import annotations

from bot.config import DEV_JWT_SECRET, Settings, get_settings

MIN_SECRET_LENGTH = 32


class ProductionConfigError(RuntimeError):
    """Production mode with settings that must not go live; the message lists every problem."""


def problems(settings: Settings) -> list[str]:
    """What keeps these settings from production (empty: nothing)."""
    found = []
    if settings.jwt_secret == DEV_JWT_SECRET:
        found.append("SHOP_JWT_SECRET is the development secret: set a random one (e.g. `openssl rand -hex 32`)")
    elif len(settings.jwt_secret) < MIN_SECRET_LENGTH:
        found.append(f"SHOP_JWT_SECRET is shorter than {MIN_SECRET_LENGTH} characters")
    if not settings.rasa_token:
        found.append("SHOP_RASA_TOKEN is empty: Rasa's HTTP API must run with `--auth-token` and the same token")
    if not settings.actions_token:
        found.append("SHOP_ACTIONS_TOKEN is empty: set a random one (e.g. `openssl rand -hex 32`); Rasa sends it to "
                     "the action server, which refuses requests without it")
    if not settings.allowed_origins.strip():
        found.append("SHOP_ALLOWED_ORIGINS is empty: name the shop's origins whose pages embed the widget "
                     "(e.g. `https://shop.example.com,https://www.shop.example.com`; `*` allows any page)")
    if settings.demo_mode:
        found.append("SHOP_DEMO_MODE is on: anyone could sign in as a demo customer (set SHOP_DEMO_MODE=false)")
    if settings.database_url.lower().startswith("sqlite"):
        found.append("DATABASE_URL is SQLite: use PostgreSQL (postgresql+psycopg://...)")
    return found


def check(settings: Settings | None = None, process: str = "shop-assistant") -> None:
    """Raise :class:`ProductionConfigError` in production mode when any setting is unfit; else nothing."""
    settings = settings or get_settings()
    if settings.env != "production":
        return
    found = problems(settings)
    if found:
        listed = "\n".join(f"  - {p}" for p in found)
        raise ProductionConfigError(f"{process} refuses to start in production mode (SHOP_ENV=production):\n{listed}")
