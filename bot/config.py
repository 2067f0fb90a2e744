"""Settings from environment variables (prefix ``SHOP_`` except the conventional ones).

Defaults describe the embedded mode that ``make run`` uses: one SQLite file, local ports.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot import PROJECT_ROOT

VAR_DIR = PROJECT_ROOT / "var"
DEV_JWT_SECRET = "dev-only-shop-assistant-secret-change-me-in-production"  # identity.jwt_secret warns when used


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOP_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{VAR_DIR / 'shop.sqlite3'}",
        validation_alias="DATABASE_URL",
        description="SQLAlchemy URL of the shop and assistant database.",
    )
    rasa_url: str = Field(default="http://127.0.0.1:5005", description="Rasa server base URL.")
    actions_url: str = Field(default="http://127.0.0.1:5055", description="Action server base URL.")
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    rasa_timeout_s: float = Field(default=20.0, description="Timeout for one Rasa call.")
    policy_file: Path = PROJECT_ROOT / "data" / "shop_policy.yml"
    models_dir: Path = PROJECT_ROOT / "models"
    demo_products: int = Field(default=5000, description="Size of the generated demo catalog.")
    public_url: str = Field(
        default="",
        description="Public base URL of the gateway, used in links the bot sends (empty: relative).",
    )
    order_number_prefix: str = Field(default="NW", description="Prefix of order numbers (NW-100234).")
    order_grant_minutes: int = Field(
        default=120, description="How long a guest's proof of an order (number plus email or postcode) lasts."
    )
    verify_max_failures: int = Field(default=5, description="Failed order verifications before the form locks.")
    verify_window_minutes: int = Field(default=15, description="Window in which failed verifications count.")
    verify_lock_minutes: int = Field(default=15, description="How long order verification stays locked.")
    jwt_secret: str = Field(
        default=DEV_JWT_SECRET,
        description="Secret shared with the shop to sign customer tokens (HS256) and checkout links.",
    )
    jwt_issuer: str = Field(default="shop-assistant", description="Expected `iss` claim of customer tokens.")
    demo_mode: bool = Field(
        default=True,
        description="Demo shop extras: 'sign in as a demo customer' (issues tokens for demo customers).",
    )
    demo_token_ttl_s: int = Field(default=3600, description="Lifetime of a demo customer's token.")

    @property
    def search_index_dir(self) -> Path:
        return self.models_dir / "search"


@lru_cache
def get_settings() -> Settings:
    return Settings()
