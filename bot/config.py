"""Settings from environment variables (prefix ``SHOP_`` except the conventional ones).

Defaults describe the embedded mode that ``make run`` uses: one SQLite file, local ports.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot import PROJECT_ROOT

if TYPE_CHECKING:
    from bot.escalation.sentiment_triggers import EscalationThresholds

VAR_DIR = PROJECT_ROOT / "var"
DEV_JWT_SECRET = "dev-only-shop-assistant-secret-change-me-in-production"  # identity.jwt_secret warns when used


RASA_TOKEN_FILE = "rasa-api.token"  # the embedded stack's generated tokens (devstack.stack), in var/
ACTIONS_TOKEN_FILE = "actions.token"


def read_local_token(path: Path) -> str:
    """A generated token kept in ``path`` (empty when there is none)."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def local_token(path: Path) -> str:
    """The token in ``path``, created (random, readable by its owner only) when missing."""
    import os
    import secrets
    import tempfile

    if token := read_local_token(path):
        return token
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, draft = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
        os.link(draft, path)  # whole or not at all; a stack that got there first wins
    except FileExistsError:
        pass
    finally:
        os.unlink(draft)
    if not (token := read_local_token(path)):
        raise RuntimeError(f"{path} is empty: delete it and start again")
    return token


class HelpdeskWebhook(BaseModel):
    """One external helpdesk that receives every new ticket (``SHOP_HELPDESK_WEBHOOKS``, a JSON list)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,60}$", description="Unique name; kept on each outbox row.")
    kind: Literal["generic", "slack", "zendesk"] = Field(description="Body format: generic JSON, Slack, Zendesk.")
    url: str = Field(pattern=r"^https?://\S+$", max_length=2000, description="Where the ticket is POSTed.")
    token: str | None = Field(default=None, description="Sent as `Authorization: Bearer` (generic, zendesk).")
    redact: bool = Field(default=False, description="Leave out the shopper's name, email, phone and addresses.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOP_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{VAR_DIR / 'shop.sqlite3'}",
        validation_alias="DATABASE_URL",
        description="SQLAlchemy URL of the shop and assistant database.",
    )
    redis_url: str = Field(
        default="", validation_alias="REDIS_URL",
        description="Redis for Rasa's lock store and the gateways' shared pub/sub (empty: in process, one replica).")
    rasa_url: str = Field(default="http://127.0.0.1:5005", description="Rasa server base URL.")
    actions_url: str = Field(default="http://127.0.0.1:5055", description="Action server base URL.")
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    rasa_timeout_s: float = Field(default=20.0, description="Timeout for one Rasa call.")
    training_runner: Literal["process", "worker"] = Field(
        default="process", description="How a console or CLI training starts: `process` runs it next to the "
        "gateway (it needs the Rasa venv there); `worker` queues it for `python -m bot model worker` (the "
        "trainer service in docker-compose).")
    replay_held: bool = Field(
        default=True, description="Run the replayer of messages held while Rasa was unreachable in this "
        "gateway process. With several replicas any number may run it (a lease in the database keeps one "
        "per conversation), but at least one must.")
    policy_file: Path = PROJECT_ROOT / "data" / "shop_policy.yml"
    search_synonyms_file: Path = Field(
        default=PROJECT_ROOT / "data" / "search_synonyms.yml",
        description="Other names for the catalog's categories that the product search understands "
                    "(jumper: sweater); docs/search.md.")
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
    # Handoff to people (bot.handoff)
    handoff_always_open: bool = Field(
        default=False, description="Ignore the support hours of the policy file: agents work around the clock.")
    handoff_presence_timeout_s: int = Field(
        default=60, ge=5, description="An agent counts as online this long after their inbox was last seen.")
    handoff_default_wait_minutes: float = Field(
        default=5.0, gt=0, description="Expected wait per queue position before any ticket was claimed.")
    handoff_wait_minutes_per_point: float = Field(
        default=2.0, gt=0, description="Queue order: one priority point per this many minutes waited.")
    helpdesk_webhooks: list[HelpdeskWebhook] = Field(
        default_factory=list,
        description='External helpdesks, JSON: [{"name": "slack", "kind": "slack", "url": "https://..."}].')
    helpdesk_max_attempts: int = Field(default=8, ge=1, description="Delivery attempts before a row is `dead`.")
    helpdesk_retry_base_s: float = Field(default=5.0, gt=0, description="First retry delay; doubles each time.")
    helpdesk_retry_max_s: float = Field(default=900.0, gt=0, description="Longest delay between two attempts.")
    helpdesk_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of one delivery request.")

    search_query_cache: int = Field(
        default=1024, ge=0, description="Query embeddings kept per action server (a refinement re-runs the same "
        "query text); 0 turns the cache off.")
    # Knowledge answers from the policy file (bot.knowledge; docs/configuration.md). Scores are the best
    # cosine similarity of the message to an entry's questions, plus the boosts below.
    knowledge_answer_threshold: float = Field(
        default=0.65, ge=0, le=2, description="Out of scope and NLU fallback: answer from the policy file only "
        "when the best entry scores at least this (else the usual 'outside what I can help with' / 'rephrase'). "
        "0.65: above every off-topic message of tests/offtopic.yml's dev split (highest 0.63).")
    knowledge_clarify_threshold: float = Field(
        default=0.40, ge=0, le=2, description="A policy intent whose chosen entry scores below this (and does "
        "not use a fact the message names) gets one clarifying question with the top entries as buttons.")
    knowledge_margin: float = Field(
        default=0.15, ge=0, le=2, description="Another entry replaces the NLU intent's own entry only when it "
        "scores at least this much higher (and the intent's entry does not use what the message named).")
    knowledge_intent_bonus: float = Field(
        default=0.05, ge=0, le=1, description="Added to the score of the entry named by the NLU intent.")
    knowledge_fact_boost: float = Field(
        default=0.05, ge=0, le=1, description="Added to an entry's score when the message names one of its "
        "facts (a country, a shipping or payment method, a section such as 'gift cards').")
    knowledge_clarify_options: int = Field(
        default=3, ge=2, le=5, description="Entries offered as buttons by a clarifying question.")

    # Rasa's tracker store: the stored events that the lead console and analytics read
    tracker_db: str = Field(
        default=str(VAR_DIR / "rasa_tracker.sqlite3"), validation_alias="TRACKER_DB",
        description="SQLite file of Rasa's tracker store (embedded mode; the same variable endpoints.yml reads).")
    tracker_store_url: str = Field(
        default="", description="SQLAlchemy URL of Rasa's tracker store; empty: the SQLite file `TRACKER_DB`.")
    # Lead console (bot.training)
    inbox_confidence_threshold: float = Field(
        default=0.7, ge=0, le=1, description="Shopper messages classified below this confidence go to the NLU inbox.")
    inbox_sample_rate: float = Field(
        default=0.03, ge=0, le=1, description="Share of confident messages sampled into the NLU inbox for review.")
    gate_max_macro_f1_drop: float = Field(
        default=0.005, ge=0, description="Largest drop of macro-F1 (0.005 = 0.5 points) a new model may show.")
    gate_max_intent_f1_drop: float = Field(
        default=0.05, ge=0, description="Largest drop of any intent's F1 (0.05 = 5 points) a new model may show.")
    training_root: Path = Field(
        default=PROJECT_ROOT,
        description="Folder with config.yml, domain.yml, data/ and tests/nlu_test.yml that console trainings use.")
    finetune_epoch_fraction: float = Field(
        default=1.0, gt=0, le=1,
        description="Below 1, console trainings fine-tune the active model with this share of the configured "
                    "epochs (Rasa's incremental training, for a pipeline with DIET); 1 (the default) trains anew: "
                    "the pretrained-feature pipeline trains in under a minute with its embedding cache, and "
                    "fine-tuning would freeze its n-gram vocabulary.")
    gate_intent_alpha: float = Field(
        default=0.05, gt=0, le=1,
        description="An intent's F1 drop blocks a model only when a sign test over its changed test messages "
                    "gives p at most this (1: any drop over the limit blocks).")
    gate_conversation_tests: bool = Field(
        default=True,
        description="Console trainings play every saved conversation test against the new model (a scratch Rasa "
                    "with the action server) and any failure blocks it; false skips the step (e.g. CI runs that "
                    "train models and need not wait for it).")
    rasa_replicas: str = Field(
        default="", description="Comma-separated base URLs of every Rasa server a model activation must reach "
                                "(empty: SHOP_RASA_URL).")
    rasa_token: str = Field(
        default="", description="Token for Rasa's HTTP API (`rasa run --auth-token`) and its REST webhook; empty: "
        "`make run` generates one (`var/rasa-api.token`).")
    actions_token: str = Field(
        default="", description="Shared secret Rasa sends to the action server (header X-Shop-Actions-Token); "
        "empty: `make run` generates one (`var/actions.token`).")
    retention_days: int = Field(
        default=365, ge=0,
        description="`privacy retention` deletes conversations, unlabelled NLU inbox messages and resolved tickets "
                    "older than this many days (0: keep forever).")
    # Security (bot.web.security, bot.conversation.rate_limits, bot.production)
    env: Literal["development", "production"] = Field(
        default="development",
        description="`production`: the gateway and action server refuse to start with the development JWT "
                    "secret, an empty SHOP_RASA_TOKEN, SHOP_ACTIONS_TOKEN or SHOP_ALLOWED_ORIGINS, demo mode or a "
                    "SQLite DATABASE_URL.")
    rate_limit_per_conversation: str = Field(
        default="20/min burst 10", description="Chat messages per conversation, e.g. `20/min burst 10`; `off`.")
    rate_limit_per_address: str = Field(
        default="120/min burst 60", description="Chat messages per client address, e.g. `120/min burst 60`; `off`.")
    rate_limit_exempt: str = Field(
        default="", description="Client addresses or networks the chat limits skip (comma list, e.g. a load "
                                "test driver: `127.0.0.1/32`).")
    trusted_proxies: str = Field(
        default="", description="Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto the gateway believes "
                                "(comma list of addresses or networks, e.g. `10.0.0.0/8`); empty: none, the "
                                "client address is the TCP peer's. Run uvicorn with --no-proxy-headers.")
    allowed_origins: str = Field(
        default="", description="Pages that may open the shopper websocket besides this host and SHOP_PUBLIC_URL "
                                "(comma list of origins, `*`: any); empty: any page in development (the demo's "
                                "one script tag), required in production.")
    max_chat_body_bytes: int = Field(
        default=16_384, ge=1024, description="Largest request body of the chat API (`/api/...`); larger: 413.")
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body of any other endpoint; larger: 413.")
    max_ws_frame_bytes: int = Field(
        default=16_384, ge=1024, description="Largest websocket frame the chat reads; larger: an error frame.")
    # Processes and their tools
    actions_host: str = Field(
        default="127.0.0.1", validation_alias="SANIC_HOST",
        description="Interface the action server listens on (rasa_sdk's own default is every interface).")
    torch_threads: int | None = Field(
        default=None, description="Torch threads of the sentence encoder (the stack sets 1 for the action server); "
                                  "empty: up to 4 (index builds embed thousands of texts at once).")
    rasa_bin: Path = Field(
        default=PROJECT_ROOT / ".venv-rasa" / "bin" / "rasa", validation_alias="RASA_BIN",
        description="Rasa's command line (`rasa train`, `rasa test`), in the Rasa venv.")
    rasa_python: Path | None = Field(
        default=None, validation_alias="RASA_PYTHON",
        description="Python of the Rasa venv (batch parsing); empty: the `python` beside RASA_BIN.")
    rasa_model_dir: Path = Field(
        default=PROJECT_ROOT / "models" / "rasa",
        description="Where `make model` writes the Rasa model archive and its fingerprint.")
    # The development stack (`python -m bot serve`, devstack/): its ports, the gateway's interface, what it runs
    rasa_model: Path | None = Field(
        default=None, validation_alias="RASA_MODEL",
        description="Rasa model archive the stack serves; empty: the version a lead activated last, else "
                    "models/rasa/shop.tar.gz.")
    stack_rasa_port: int = Field(default=5005, validation_alias="RASA_PORT", description="The stack's Rasa port.")
    stack_actions_port: int = Field(
        default=5055, validation_alias="ACTIONS_PORT", description="The stack's action server port.")
    stack_gateway_port: int = Field(
        default=8000, validation_alias="GATEWAY_PORT", description="The stack's gateway port.")
    bind_host: str = Field(
        default="127.0.0.1", validation_alias="BIND_HOST",
        description="Interface the stack's gateway listens on (Rasa and the action server stay on 127.0.0.1).")
    app_python: Path | None = Field(
        default=None, validation_alias="APP_PYTHON",
        description="Python that runs the stack's action server and gateway; empty: this one.")

    @field_validator("helpdesk_webhooks")
    @classmethod
    def _unique_webhook_names(cls, value: list[HelpdeskWebhook]) -> list[HelpdeskWebhook]:
        names = [w.name for w in value]
        if len(names) != len(set(names)):
            raise ValueError(f"helpdesk webhook names must be unique, got {names}")
        return value

    @field_validator("torch_threads", mode="before")
    @classmethod
    def _torch_threads(cls, value: object) -> int | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        text = str(value).strip()
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"SHOP_TORCH_THREADS must be a positive whole number, not {value!r}")
        return int(text)

    @field_validator("rasa_python", "rasa_model", "app_python", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def rasa_python_path(self) -> Path:
        """Python of the Rasa venv: RASA_PYTHON, else the ``python`` beside RASA_BIN."""
        return self.rasa_python or self.rasa_bin.parent / "python"

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        import ipaddress

        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError as exc:
                raise ValueError(f"SHOP_TRUSTED_PROXIES: {part!r} is not an address or network") from exc
        return value

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [p.strip() for p in self.trusted_proxies.split(",") if p.strip()]

    @field_validator("rate_limit_per_conversation", "rate_limit_per_address")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        from bot.conversation.rate_limits import Rule

        Rule.parse(value)  # a clear error at start-up for "20 per minute" and the like
        return value

    @property
    def local_tokens_dir(self) -> Path:
        """Where `make run` keeps the tokens it generated for Rasa and the action server: beside the tracker
        store (``var/``), as the stack does (devstack.stack)."""
        path = Path(self.tracker_db).parent
        return path if path.is_absolute() else PROJECT_ROOT / path

    @property
    def rasa_api_token(self) -> str:
        """The token for Rasa's HTTP API: SHOP_RASA_TOKEN, else (development) the one `make run` generated."""
        if self.rasa_token or self.env == "production":
            return self.rasa_token
        return read_local_token(self.local_tokens_dir / RASA_TOKEN_FILE)

    @property
    def search_index_dir(self) -> Path:
        return self.models_dir / "search"

    @property
    def rasa_servers(self) -> list[str]:
        return [u.strip() for u in self.rasa_replicas.split(",") if u.strip()] or [self.rasa_url]

    @property
    def tracker_url(self) -> str:
        """SQLAlchemy URL of Rasa's tracker store (its ``events`` table)."""
        if self.tracker_store_url:
            return self.tracker_store_url
        if not self.database_url.startswith("sqlite"):
            return self.database_url  # production: Rasa's tracker store lives in the same database
        path = Path(self.tracker_db)
        return f"sqlite:///{path if path.is_absolute() else PROJECT_ROOT / path}"


@lru_cache
def get_settings() -> Settings:
    return Settings()


ESCALATION_PREFIX = "SHOP_ESCALATION_"


def escalation_thresholds(environ: Mapping[str, str] | None = None) -> EscalationThresholds:
    """The old sentiment triggers' thresholds and the mood parameters: the defaults, overridden by the
    ``SHOP_ESCALATION_*`` variables of ``environ`` (default: this process's environment). A bad or unknown
    variable raises ValueError naming it. Not a Settings field: ``EscalationThresholds`` validates them itself,
    in pure Python, so that the benchmarks and the Rasa venv read them the same way."""
    import os

    from bot.escalation.sentiment_triggers import EscalationThresholds

    environ = os.environ if environ is None else environ
    return EscalationThresholds.from_env({k: v for k, v in environ.items() if k.startswith(ESCALATION_PREFIX)})
