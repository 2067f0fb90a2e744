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

    @property
    def search_index_dir(self) -> Path:
        return self.models_dir / "search"


@lru_cache
def get_settings() -> Settings:
    return Settings()
