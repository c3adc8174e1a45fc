"""One typed settings object, read from the environment (and an optional `.env`) once."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.netguard import address_allowed

# The sandbox accepts these keys; production refuses them (see `_refuse_sandbox_in_production`).
SANDBOX_KIE_KEY = "sandbox-kie-key"
SANDBOX_IMGBB_KEY = "sandbox-imgbb-key"
# Celery queues: job steps and the sweep on one, webhook deliveries on their own, so that a
# slow receiver never delays a job (`soraq worker --queues`).
JOBS_QUEUE = "soraq"
WEBHOOK_QUEUE = "webhooks"
QUEUES = (JOBS_QUEUE, WEBHOOK_QUEUE)

MIN_ADMIN_TOKEN = 32
EXAMPLE_PASSWORDS = {"change-me"}
_ALL_MAPPED_IPV4 = ip_network("::ffff:0:0/96")


def _upstream_url_problem(url: str) -> str | None:
    """Why a production upstream URL is unsafe (plain http, or this machine or a private
    network, after resolving it), or None."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return f"must be an https:// URL, not {url!r}"
    try:
        infos = socket.getaddrinfo(parts.hostname, 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None  # no DNS at start-up: nothing to judge; the connection will tell
    for info in infos:
        address = ip_address(info[4][0])
        if not address_allowed(address, []):
            return f"points at a loopback or private address ({address}), not the real service"
    return None


@dataclass(frozen=True)
class Rate:
    count: int
    window: float  # seconds


def parse_rate(text: str) -> Rate:
    """ "20/10s", "100/1m", "5/1" (seconds) → Rate(count, window seconds)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*([sm]?)\s*", text)
    if match is None or int(match.group(1)) < 1 or float(match.group(2)) <= 0:
        raise ValueError(f"a rate looks like 20/10s or 100/1m, not {text!r}")
    unit = 60.0 if match.group(3) == "m" else 1.0
    return Rate(int(match.group(1)), float(match.group(2)) * unit)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    var_dir: Path = Path("var")

    database_url: str = ""  # empty: a SQLite file under var_dir
    celery_broker_url: str = ""  # empty: kombu's filesystem transport under var_dir/broker

    kie_api_key: SecretStr | None = None
    kie_base_url: str = "https://api.kie.ai"
    imgbb_api_key: SecretStr | None = None
    imgbb_base_url: str = "https://api.imgbb.com"
    # Where test-mode keys' jobs go (`soraq clients create --test`): a soraq sandbox standing
    # in for Kie and imgbb, whatever KIE_BASE_URL says. Empty: test-mode keys are refused.
    test_mode_kie_url: str = ""
    public_url: str | None = None  # how Kie reaches /kie/callback; unset: no callbacks
    kie_webhook_hmac_key: SecretStr | None = None  # set when the Kie account signs callbacks
    # Callbacks for one job closer together than this cause one upstream read, not many.
    callback_debounce: float = Field(5.0, ge=0)

    model_catalogue: Path | None = None  # a TOML file replacing the bundled catalogue
    # Each model has its own prompt limit (the catalogue); this caps them all.
    prompt_max_length: int = Field(30000, ge=1)

    # Outbound calls: every one has a timeout; retries are scheduled through the job row.
    kie_timeout: float = Field(30.0, gt=0)
    imgbb_timeout: float = Field(30.0, gt=0)
    imgbb_expiration: int = Field(86400, ge=60, le=15552000)
    max_attempts: int = Field(6, ge=1)  # consecutive transient failures before a job fails
    retry_base_delay: float = Field(2.0, gt=0)
    retry_max_delay: float = Field(300.0, gt=0)

    # Watching Kie: rows carry next_check_at; a beat-driven sweep picks up what is due.
    check_initial_delay: float = Field(5.0, ge=0)
    check_max_interval: float = Field(30.0, gt=0)
    check_backoff: float = Field(1.6, ge=1)
    callback_check_interval: float = Field(60.0, gt=0)  # safety-net polling when callbacks are on
    pending_grace: float = Field(60.0, ge=0)  # how long "recordInfo is null" counts as pending
    job_timeout: float = Field(1200.0, gt=0)  # from submission to Kie until error.code=timeout
    submit_lease: float = Field(120.0, gt=0)  # a job stuck in submitting longer is submit_unknown
    claim_lease: float = Field(60.0, gt=0)  # a dispatched job is re-dispatched after this
    # A freed createTask token waits for the next sweep: at 2 s, 14 % of Kie's rate went unused
    # in the burst benchmark; at 0.5 s, 5 %. An idle sweep is a few indexed queries.
    sweep_interval: float = Field(0.5, gt=0)
    sweep_batch: int = Field(500, ge=1)

    # Kie's account-wide limits, enforced across every worker (count/window, window in s or m).
    kie_create_rate: str = "20/10s"
    kie_max_in_flight: int = Field(100, ge=1)
    kie_check_rate: str = "100/10s"
    # While the account is refused (bad key, no credits, sub-key limit): one createTask probe
    # this often, never more.
    account_probe_interval: float = Field(60.0, gt=0)

    # Credits. Kie's balance is read every KIE_BALANCE_INTERVAL (and from every callback);
    # below KIE_LOW_CREDITS operators are alerted once per episode; below KIE_MIN_CREDITS, or
    # below the next job's estimate, admission pauses (kie_low_credits) instead of meeting 402.
    credit_usd_rate: float = Field(0.005, ge=0)  # USD per Kie credit, for usd_estimated
    kie_balance_interval: float = Field(300.0, gt=0)
    kie_low_credits: float = Field(1000.0, ge=0)
    kie_min_credits: float = Field(0.0, ge=0)
    # Account events (account.low_credits), signed with `soraq operator-secret`.
    operator_webhook_url: str | None = None

    # Clients and their completion webhooks (Standard Webhooks).
    default_max_active_jobs: int = Field(100, ge=1)
    # New jobs per client (a client's own `create_rate` overrides it): a flood gets 429s.
    client_create_rate: str = "60/1m"
    auth_cache_seconds: float = Field(5.0, ge=0)  # a disabled key stops working within this
    idempotency_ttl: float = Field(86400.0, gt=0)
    webhook_allow_http: bool = False  # plain http receivers: development only
    webhook_allowed_networks: str = ""  # CIDRs exempt from the private-address guard
    webhook_timeout: float = Field(10.0, gt=0)  # the whole exchange, not each read
    webhook_max_in_flight_per_host: int = Field(4, ge=1)  # across every worker
    # Seconds before each attempt: the spec's schedule (immediately, 5 s, 5 min, 30 min, 2 h, …).
    webhook_retry_schedule: str = "0,5,300,1800,7200,18000,36000,36000"

    # Operators: the admin API and dashboard take this token; unset or blank, they are closed.
    admin_token: SecretStr | None = None
    # Server-side half of the dashboard's session-signing key (the other half is the admin
    # token). Unset on the embedded default: generated once into var/session-secret.
    session_secret: SecretStr | None = None
    # /metrics: a bearer token (unset: open, as Prometheus scrapes usually are on a private
    # network) and how long the figures read from the database are reused.
    metrics_token: SecretStr | None = None
    metrics_cache_seconds: float = Field(10.0, ge=0)
    # Set when ADMIN_TOKEN was present but blank: production refuses that (see below).
    admin_token_blank: bool = Field(False, exclude=True, repr=False)

    # Result videos: archived before a job succeeds (media/). file:// or s3://bucket/prefix.
    storage_url: str = ""  # empty: file://<VAR_DIR>/media
    s3_endpoint_url: str | None = None  # e.g. http://minio:9000
    s3_region: str | None = None
    archive_max_bytes: int = Field(2 * 1024**3, ge=1)
    archive_timeout: float = Field(600.0, gt=0)  # seconds for one whole download
    archive_watermarked: bool = False
    content_url_ttl: float = Field(3600.0, gt=0)  # how long a signed content link works
    # How long Kie keeps a finished task that a later job may continue (extend, upscale).
    kie_task_retention_days: float = Field(14.0, gt=0)
    # How often the catalogue is compared with Kie's live one (models paused, gone, changed),
    # and Kie's prices and success rates read (also at start).
    catalogue_check_interval: float = Field(86400.0, gt=0)
    kie_prices_interval: float = Field(3600.0, gt=0)
    # How long a signed link to an earlier job's video lasts when it is another job's input
    # (the upstream fetches it when the task starts, which may be after a queue).
    input_link_ttl: float = Field(6 * 3600.0, gt=0)
    # Where Kie's File Upload API is (videos and audio given as bytes, and earlier jobs'
    # files, reach Kie through it); its own host in Kie's docs.
    kie_file_upload_url: str = "https://kieai.redpandaai.co"
    result_retention_days: float = Field(30.0, gt=0)  # archived files are deleted after this

    worker_pool: Literal["threads", "prefork", "solo"] = "threads"
    worker_concurrency: int = Field(8, ge=1)
    log_level: str = "INFO"
    # Read only to refuse the example password in production (compose passes it to Postgres).
    postgres_password: str = Field("", repr=False)
    log_format: Literal["json", "text"] | None = None  # default: json in production

    @property
    def resolved_log_format(self) -> str:
        if self.log_format:
            return self.log_format
        return "json" if self.environment == "production" else "text"

    @model_validator(mode="before")
    @classmethod
    def _blank_secrets_are_unset(cls, data: object) -> object:
        """`ADMIN_TOKEN=` (as .env files ship it) is no token at all: an empty secret would
        make every key derived from it public."""
        if isinstance(data, dict):
            for name in ("admin_token", "session_secret", "metrics_token"):
                value = data.get(name)
                if isinstance(value, str) and not value.strip():
                    data.pop(name)
                    if name == "admin_token":
                        data["admin_token_blank"] = True
        return data

    @field_validator("kie_create_rate", "kie_check_rate", "client_create_rate")
    @classmethod
    def _rate_format(cls, value: str) -> str:
        parse_rate(value)
        return value

    @property
    def create_rate(self) -> Rate:
        return parse_rate(self.kie_create_rate)

    @property
    def check_rate(self) -> Rate:
        return parse_rate(self.kie_check_rate)

    @model_validator(mode="after")
    def _refuse_sandbox_in_production(self) -> Settings:
        if self.environment != "production":
            return self
        problems = []
        for name, key, sandbox_key in (
            ("KIE_API_KEY", self.kie_api_key, SANDBOX_KIE_KEY),
            ("IMGBB_API_KEY", self.imgbb_api_key, SANDBOX_IMGBB_KEY),
        ):
            if key is None or not key.get_secret_value():
                problems.append(f"{name} is not set")
            elif key.get_secret_value() == sandbox_key:
                problems.append(f"{name} is the sandbox key")
        for name, url in (
            ("KIE_BASE_URL", self.kie_base_url),
            ("IMGBB_BASE_URL", self.imgbb_base_url),
            ("KIE_FILE_UPLOAD_URL", self.kie_file_upload_url),
        ):
            problem = _upstream_url_problem(url)
            if problem:
                problems.append(f"{name} {problem}")
        problems += self._unsafe_production_settings()
        if problems:
            raise ValueError("production settings refused: " + "; ".join(problems))
        return self

    def _unsafe_production_settings(self) -> list[str]:
        problems = []
        if self.admin_token_blank:
            problems.append(
                "ADMIN_TOKEN is blank: remove it to keep the admin side closed, "
                f"or set {MIN_ADMIN_TOKEN} or more random characters"
            )
        elif self.admin_token is not None:
            if len(self.admin_token.get_secret_value()) < MIN_ADMIN_TOKEN:
                problems.append(f"ADMIN_TOKEN is shorter than {MIN_ADMIN_TOKEN} characters")
        secret = self.session_secret.get_secret_value() if self.session_secret else ""
        if len(secret) < MIN_ADMIN_TOKEN:
            # It keys dashboard sessions and the signed content links every process must
            # accept: a secret generated per machine would not do.
            problems.append(
                f"SESSION_SECRET must be set ({MIN_ADMIN_TOKEN}+ random characters, the same "
                "on every API and worker process)"
            )
        if self.webhook_allow_http:
            problems.append("WEBHOOK_ALLOW_HTTP must be false (webhooks go over https)")
        for network in self.allowed_networks:
            if network.prefixlen == 0 or network == _ALL_MAPPED_IPV4:
                problems.append(f"WEBHOOK_ALLOWED_NETWORKS allows every address ({network})")
        for name, url in (
            ("DATABASE_URL", self.database_url),
            ("POSTGRES_PASSWORD", f"postgresql://x:{self.postgres_password}@x/x"),
        ):
            if urlsplit(url).password in EXAMPLE_PASSWORDS:
                problems.append(f"{name} uses the example password from .env.example")
        return problems

    @property
    def webhook_schedule(self) -> list[float]:
        return [float(part) for part in self.webhook_retry_schedule.split(",") if part.strip()]

    @property
    def allowed_networks(self) -> list[IPv4Network | IPv6Network]:
        return [
            ip_network(part.strip(), strict=False)
            for part in self.webhook_allowed_networks.split(",")
            if part.strip()
        ]

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.var_dir / 'soraq.db').resolve()}"

    @property
    def broker_dir(self) -> Path:
        return (self.var_dir / "broker").resolve()

    @property
    def resolved_broker_url(self) -> str:
        return self.celery_broker_url or "filesystem://localhost//"

    @property
    def embedded_broker(self) -> bool:
        return self.resolved_broker_url.startswith("filesystem://")

    @property
    def callbacks_enabled(self) -> bool:
        return bool(self.public_url)


@lru_cache
def get_settings() -> Settings:
    return Settings()
