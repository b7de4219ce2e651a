"""The project's configuration, read once from the environment.

Every process (launcher, action server, gateway, CLIs) calls :func:`get_settings`; nothing
else reads ``os.environ`` for project settings. Values can also come from a ``.env`` file in
the project root.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseSettings, Field, SecretStr

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SECRETS_DIR_NAME = "secrets"  # <data dir>/secrets/: one file per secret, written by the launcher


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
    redis_password: SecretStr | None = Field(
        None,
        env="SUPPORT_REDIS_PASSWORD",
        description="requirepass of the launcher's own Redis; unset: generated once per data dir.",
    )
    rasa_url: str = Field("http://127.0.0.1:5005", env="RASA_URL")
    rasa_urls: str = Field(
        "",
        env="RASA_URLS",
        description="Rasa replicas (comma-separated base URLs) the gateway spreads conversations over by a consistent hash; unset: RASA_URL alone.",
    )
    rasa_port: int = Field(5005, env="RASA_PORT")
    rasa_host: str = Field(
        "127.0.0.1",
        env="RASA_HOST",
        description="Interface Rasa listens on (loopback: gateway only).",
    )
    rasa_auth_token: SecretStr | None = Field(
        None,
        env="RASA_AUTH_TOKEN",
        description="Token of Rasa's HTTP API (`--auth-token`); unset: generated once per data dir.",
    )
    action_server_url: str = Field("http://127.0.0.1:5055/webhook", env="ACTION_SERVER_URL")
    action_server_port: int = Field(5055, env="ACTION_SERVER_PORT")
    action_server_host: str = Field(
        "127.0.0.1", env="ACTION_SERVER_HOST", description="Interface the action server listens on."
    )
    action_server_token: SecretStr | None = Field(
        None,
        env="ACTION_SERVER_TOKEN",
        description="Secret Rasa sends the action server on every call; unset: generated once per data dir.",
    )
    gateway_host: str = Field("127.0.0.1", env="GATEWAY_HOST")
    gateway_port: int = Field(8080, env="GATEWAY_PORT")
    rasa_replicas: int = Field(
        1,
        env="RASA_REPLICAS",
        ge=1,
        le=32,
        description="Rasa servers the launcher starts, on RASA_PORT, RASA_PORT+1, ... (`--rasa N`).",
    )
    action_server_replicas: int = Field(
        1,
        env="ACTION_SERVER_REPLICAS",
        ge=1,
        le=32,
        description="Action servers the launcher starts, on ACTION_SERVER_PORT, +1, ...; Rasa replica i calls number i mod N (`--actions N`).",
    )
    gateway_replicas: int = Field(
        1,
        env="GATEWAY_REPLICAS",
        ge=1,
        le=32,
        description="Gateways the launcher starts (`--gateways N`); more than one: HAProxy on GATEWAY_PORT, gateways on GATEWAY_PORT+1, ...",
    )
    supervisor_backoff_initial_seconds: float = Field(
        0.5,
        env="SUPERVISOR_BACKOFF_INITIAL_SECONDS",
        gt=0,
        description="First wait before the launcher restarts a crashed service (doubles per crash).",
    )
    supervisor_backoff_max_seconds: float = Field(
        30.0, env="SUPERVISOR_BACKOFF_MAX_SECONDS", gt=0, description="Longest restart backoff."
    )
    supervisor_healthy_reset_seconds: float = Field(
        60.0,
        env="SUPERVISOR_HEALTHY_RESET_SECONDS",
        gt=0,
        description="Healthy this long after a restart: the backoff starts over.",
    )
    supervisor_max_crashes: int = Field(
        5,
        env="SUPERVISOR_MAX_CRASHES",
        ge=1,
        description="Crashes of one service within SUPERVISOR_CRASH_WINDOW_SECONDS after which the launcher stops everything and exits non-zero.",
    )
    supervisor_crash_window_seconds: float = Field(
        120.0,
        env="SUPERVISOR_CRASH_WINDOW_SECONDS",
        gt=0,
        description="See SUPERVISOR_MAX_CRASHES.",
    )
    web_allowed_origins: str = Field(
        "",
        env="WEB_ALLOWED_ORIGINS",
        description="Extra origins (comma-separated) whose pages may embed the widget; the gateway's own is always allowed.",
    )
    gateway_redis_max_connections: int = Field(
        16,
        env="GATEWAY_REDIS_MAX_CONNECTIONS",
        ge=8,
        description="The gateway's Redis connections, all told (a bounded pool: callers wait for a free one); the sockets' notice subscriber and stream fetcher (bot/web/fanout.py) and the typing subscriber hold theirs.",
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
    max_turns_in_flight: int = Field(
        32,
        env="MAX_TURNS_IN_FLIGHT",
        ge=0,
        description="Customer turns one gateway has at Rasa at once; more wait briefly, then get 503 busy with Retry-After (0: no bound).",
    )
    turn_queue_max: int = Field(
        256,
        env="TURN_QUEUE_MAX",
        ge=0,
        description="Turns that may wait for a place among those in flight; beyond, 503 busy at once.",
    )
    turn_queue_wait_seconds: float = Field(
        5.0,
        env="TURN_QUEUE_WAIT_SECONDS",
        ge=0,
        description="How long a turn waits for a place among those in flight before 503 busy with Retry-After.",
    )
    redis_sentinels: str = Field(
        "",
        env="REDIS_SENTINELS",
        description="Redis Sentinel addresses, host:port,host:port; set: Redis is the master Sentinel names (REDIS_SENTINEL_MASTER), REDIS_URL is not used for it.",
    )
    redis_sentinel_master: str = Field(
        "support", env="REDIS_SENTINEL_MASTER", description="Master set name the sentinels watch."
    )
    redis_sentinel_password: str | None = Field(
        None,
        env="REDIS_SENTINEL_PASSWORD",
        description="Password of the Redis servers found through Sentinel (and of the sentinels, if they ask for one).",
    )
    lock_owner_ttl_seconds: float = Field(
        10.0,
        env="LOCK_OWNER_TTL_SECONDS",
        ge=1,
        description="How long after a Rasa process stops renewing its heartbeat its conversation locks are released (a killed Rasa).",
    )
    tracker_retention_seconds: int = Field(
        30 * 24 * 3600,
        env="TRACKER_RETENTION_SECONDS",
        ge=60,
        description="How long a conversation's Rasa state (slots, events) is kept after its last turn.",
    )
    tracker_db_url: str | None = Field(
        None,
        env="TRACKER_DB_URL",
        description="SQLAlchemy URL (e.g. postgresql://...) to keep Rasa's conversation state in instead of Redis.",
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

    # Retention (every Redis key's is in bot/keys.py and the table of docs/security.md).
    conversation_retention_seconds: int = Field(
        30 * 24 * 3600,
        env="CONVERSATION_RETENTION_SECONDS",
        ge=3600,
        description="A web conversation (its record, event stream and handoff state) is deleted this long after its last activity.",
    )
    closed_ticket_retention_seconds: int = Field(
        30 * 24 * 3600,
        env="CLOSED_TICKET_RETENTION_SECONDS",
        ge=0,
        description="A closed ticket (hash, messages, history) is deleted this long after it closes; 0 keeps closed tickets.",
    )
    audit_retention_seconds: int = Field(
        90 * 24 * 3600,
        env="AUDIT_RETENTION_SECONDS",
        ge=3600,
        description="A conversation's own escalation trail is deleted this long after its last turn.",
    )
    history_retention_seconds: int = Field(
        400 * 24 * 3600,
        env="HISTORY_RETENTION_SECONDS",
        ge=24 * 3600,
        description="Entries older than this are trimmed from the decision, CSAT and label streams.",
    )
    analytics_cache_seconds: float = Field(
        30.0,
        env="ANALYTICS_CACHE_SECONDS",
        ge=0,
        description="How long the dashboard reuses the conversation records it computed.",
    )
    analytics_workers: int = Field(
        1,
        env="ANALYTICS_WORKERS",
        ge=1,
        le=8,
        description="Threads a gateway uses to compute dashboard reports (off its event loop).",
    )

    # Rate limits ("N/period": up to N at once, refilled evenly over the period; period s, m, h or
    # e.g. 10s, 5m; "off" disables one). Kept in Redis, so they hold across several gateways.
    rate_limit_conversations_per_ip: str = Field(
        "20/m",
        env="RATE_LIMIT_CONVERSATIONS_PER_IP",
        description="New conversations per client IP.",
    )
    rate_limit_messages_per_conversation: str = Field(
        "20/m",
        env="RATE_LIMIT_MESSAGES_PER_CONVERSATION",
        description="Customer messages per conversation.",
    )
    rate_limit_messages_per_ip: str = Field(
        "120/m", env="RATE_LIMIT_MESSAGES_PER_IP", description="Customer messages per client IP."
    )
    rate_limit_typing_per_conversation: str = Field(
        "10/10s",
        env="RATE_LIMIT_TYPING_PER_CONVERSATION",
        description="Typing signals per conversation and side (excess frames are dropped).",
    )
    rate_limit_logins_per_account: str = Field(
        "10/5m", env="RATE_LIMIT_LOGINS_PER_ACCOUNT", description="Login attempts per account."
    )
    rate_limit_logins_per_ip: str = Field(
        "40/5m", env="RATE_LIMIT_LOGINS_PER_IP", description="Login attempts per client IP."
    )
    rate_limit_repeat_delay_seconds: float = Field(
        1.0,
        env="RATE_LIMIT_REPEAT_DELAY_SECONDS",
        description="A client refused again from the gateway's memory of Redis's refusals (it ignored Retry-After) gets its 429 after this long (at most its Retry-After); 0: at once.",
        ge=0,
        le=30,
    )
    rate_limit_requests_per_ip: str = Field(
        "200/10s",
        env="RATE_LIMIT_REQUESTS_PER_IP",
        description="HTTP requests per client IP at HAProxy (several gateways); beyond: 429.",
    )
    max_sockets_per_conversation: int = Field(
        5, env="MAX_SOCKETS_PER_CONVERSATION", description="Open WebSockets per conversation."
    )
    max_sockets_per_ip: int = Field(
        50, env="MAX_SOCKETS_PER_IP", description="Open WebSockets per client IP."
    )
    metrics_token: SecretStr | None = Field(
        None,
        env="METRICS_TOKEN",
        description="Bearer token a scrape of the gateway's /metrics must send; unset: loopback clients only.",
    )
    trusted_proxies: str = Field(
        "",
        env="TRUSTED_PROXIES",
        description="Addresses/CIDRs of reverse proxies whose X-Forwarded-For/-Proto/-Host are believed; empty: none.",
    )

    class Config:
        env_file = PROJECT_ROOT / ".env"
        env_file_encoding = "utf-8"

    @property
    def secrets_dir(self) -> Path:
        """Where the launcher keeps the secrets it generated (mode 0700, one 0600 file each)."""
        return self.data_dir / SECRETS_DIR_NAME

    def rasa_replica_urls(self) -> list[str]:
        """The Rasa replicas the gateway routes to: `RASA_URLS` (comma-separated, in order),
        else `RASA_URL` alone."""
        urls = [url.strip().rstrip("/") for url in self.rasa_urls.split(",") if url.strip()]
        return urls or [self.rasa_url.rstrip("/")]

    def redis_address(self) -> str:
        """`REDIS_URL`, else the launcher's own Redis on loopback, with its password if it has one."""
        if self.redis_url:
            return self.redis_url
        password = self.redis_password.get_secret_value() if self.redis_password else ""
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"redis://{auth}127.0.0.1:{self.redis_port}/0"


def redact_url(url: str) -> str:
    """`url` fit for a message or a log: a password in it replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def load_settings() -> Settings:
    """Read the settings now: environment and `.env` first, then the secret files the launcher
    wrote under `<data dir>/secrets/` (file name = the variable's name, e.g. `rasa_auth_token`)."""
    settings = Settings()
    if settings.secrets_dir.is_dir():
        settings = Settings(_secrets_dir=settings.secrets_dir)
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return load_settings()
