"""The project's configuration, read once from the environment.

Every process (launcher, action server, gateway, CLIs) calls :func:`get_settings`; nothing
else reads ``os.environ`` for project settings. Values can also come from a ``.env`` file in
the project root.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseSettings, Field

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Settings for every process of the stack. Environment variables win over defaults."""

    redis_url: str | None = Field(
        None,
        env="REDIS_URL",
        description="Redis to use; when unset the launcher starts its own with AOF.",
    )
    redis_port: int = Field(
        6390, env="SUPPORT_REDIS_PORT", description="Port of the launcher's own Redis."
    )
    data_dir: Path = Field(
        PROJECT_ROOT / "var", env="SUPPORT_DATA_DIR", description="Redis AOF, logs, SQLite."
    )
    rasa_url: str = Field("http://127.0.0.1:5005", env="RASA_URL")
    rasa_port: int = Field(5005, env="RASA_PORT")
    action_server_url: str = Field("http://127.0.0.1:5055/webhook", env="ACTION_SERVER_URL")
    action_server_port: int = Field(5055, env="ACTION_SERVER_PORT")
    gateway_host: str = Field("127.0.0.1", env="GATEWAY_HOST")
    gateway_port: int = Field(8080, env="GATEWAY_PORT")
    web_allowed_origins: str = Field(
        "",
        env="WEB_ALLOWED_ORIGINS",
        description="Extra origins (comma-separated) whose pages may embed the widget; the gateway's own is always allowed.",
    )
    escalation_policy: Path = Field(PROJECT_ROOT / "escalation_policy.yml", env="ESCALATION_POLICY")
    models_dir: Path = Field(PROJECT_ROOT / "models", env="SUPPORT_MODELS_DIR")
    queue_namespace: str = Field("support", env="SUPPORT_QUEUE_NAMESPACE")
    agent_lease_seconds: float = Field(15.0, env="AGENT_LEASE_SECONDS")
    demo_mode: bool = Field(
        False,
        env="SUPPORT_DEMO",
        description="Demo mode: the gateway creates the demo lead with its published password.",
    )
    first_lead_login: str = Field(
        "lead@pennantpay.example",
        env="SUPPORT_FIRST_LEAD_LOGIN",
        description="Login of the lead the launcher creates (random password) when there is none.",
    )
    agent_session_idle_seconds: int = Field(
        8 * 3600, env="AGENT_SESSION_IDLE_SECONDS", ge=60, description="Sliding session expiry."
    )
    agent_session_max_seconds: int = Field(
        12 * 3600,
        env="AGENT_SESSION_MAX_SECONDS",
        ge=60,
        description="Absolute session lifetime, however active.",
    )
    password_scrypt_log2_n: int = Field(
        17,
        env="PASSWORD_SCRYPT_LOG2_N",
        ge=10,
        le=20,
        description="log2 of scrypt's N for new password hashes (OWASP: 17; lower only in tests).",
    )
    password_hash_concurrency: int = Field(
        2,
        env="PASSWORD_HASH_CONCURRENCY",
        ge=1,
        le=16,
        description="Password hashes at once per process (each takes 128 MiB at N=2^17).",
    )
    offered_buttons_ttl_seconds: int = Field(
        24 * 3600,
        env="OFFERED_BUTTONS_TTL_SECONDS",
        description="How long the buttons the bot offered last stay accepted as a customer's payload.",
    )
    card_tail_ttl_seconds: int = Field(
        600,
        env="CARD_TAIL_TTL_SECONDS",
        description="How long a message's trailing digits are kept to mask a card number split over two messages.",
    )
    turn_wait_seconds: float = Field(
        25.0,
        env="TURN_WAIT_SECONDS",
        description="How long a customer's send waits for the bot before a 503 with Retry-After (the turn goes on).",
    )
    rasa_turn_timeout_seconds: float = Field(
        90.0,
        env="RASA_TURN_TIMEOUT_SECONDS",
        description="How long the gateway waits for Rasa's answer to one customer turn before giving it up as unknown.",
    )
    events_db_url: str | None = Field(
        None,
        env="EVENTS_DB_URL",
        description="SQLAlchemy URL of the SQL event store the event sink writes (e.g. postgresql://...); unset: SQLite <data dir>/events.db.",
    )
    event_sink_port: int = Field(
        5056,
        env="EVENT_SINK_PORT",
        description="Health port of the event sink (python -m bot.analytics.event_sink).",
    )
    event_sink_batch_size: int = Field(
        500,
        env="EVENT_SINK_BATCH_SIZE",
        ge=1,
        le=10_000,
        description="Rasa events the sink reads from the Redis stream and commits to SQL at once.",
    )
    event_sink_claim_idle_seconds: float = Field(
        30.0,
        env="EVENT_SINK_CLAIM_IDLE_SECONDS",
        gt=0,
        description="A sink takes over another consumer's unacknowledged events after this idle time.",
    )

    class Config:
        env_file = PROJECT_ROOT / ".env"
        env_file_encoding = "utf-8"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return Settings()
