"""One typed settings object, read from the environment (and an optional `.env`) once."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, collapse_addresses, ip_address, ip_network
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

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
# Result downloads too: a slow source holds an archive worker's thread, never a job step's.
ARCHIVE_QUEUE = "archive"
QUEUES = (JOBS_QUEUE, WEBHOOK_QUEUE, ARCHIVE_QUEUE)

MIN_ADMIN_TOKEN = 32
# Connections one API process serves at once (uvicorn's limit_concurrency; past it, 503).
API_CONNECTION_LIMIT = 2000
# A random 32-character token has ~25 distinct characters; "aaaa…" or "abab…" is not one.
MIN_DISTINCT_SECRET_CHARACTERS = 10
EXAMPLE_PASSWORDS = {"change-me"}
_ALL_MAPPED_IPV4 = ip_network("::ffff:0:0/96")
# What no allowance may open in production: this machine, link-local addresses (cloud
# metadata services live there: 169.254.169.254, fd00:ec2::254 on AWS's IPv6) and Alibaba's.
_NEVER_ALLOWED = tuple(
    ip_network(n)
    for n in (
        "127.0.0.0/8",
        "::1/128",
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::254/128",
        "100.100.100.200/32",
        "0.0.0.0/8",
        "::/128",
    )
)


def upstream_url_problem(url: str) -> str | None:
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


def _networks(text: str) -> list[IPv4Network | IPv6Network]:
    return [ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]


def _as_ipv4(network: IPv4Network | IPv6Network) -> IPv4Network | IPv6Network:
    """An IPv4-mapped IPv6 range (::ffff:a.b.c.d/n) as the IPv4 range it reaches."""
    if isinstance(network, IPv6Network) and network.subnet_of(_ALL_MAPPED_IPV4):  # type: ignore[arg-type]
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return IPv4Network((mapped, network.prefixlen - 96))
    return network


def network_problems(name: str, text: str) -> list[str]:
    """Why an allowance is unsafe in production: what its ranges cover *together* (two
    halves are everything), mapped IPv6 read as the IPv4 it reaches, and any overlap with
    this machine or link-local/metadata addresses."""
    networks = [_as_ipv4(network) for network in _networks(text)]
    problems = []
    v4 = [n for n in networks if isinstance(n, IPv4Network)]
    v6 = [n for n in networks if isinstance(n, IPv6Network)]
    if any(n.prefixlen == 0 for n in collapse_addresses(v4)) or any(
        n.prefixlen == 0 for n in collapse_addresses(v6)
    ):
        problems.append(f"{name} allows every address ({text})")
    for network in networks:
        if any(network.version == bad.version and network.overlaps(bad) for bad in _NEVER_ALLOWED):
            problems.append(f"{name} opens loopback, link-local or metadata addresses ({network})")
    return problems


def weak_secret(secret: str) -> bool:
    """Trivially guessable: blank, or a handful of characters repeated."""
    return not secret.strip() or len(set(secret)) < MIN_DISTINCT_SECRET_CHARACTERS


def _test_mode_url_problem(url: str) -> str | None:
    """The test-mode sandbox is a service of its own (compose: sandbox:8765), never this
    machine or a link-local/metadata address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http(s):// URL, not {url!r}"
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 80, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return None  # no DNS at start-up (the service may come later): the call will tell
    for info in infos:
        address = ip_address(info[4][0])
        mapped = getattr(address, "ipv4_mapped", None) or address
        if any(mapped in network for network in _NEVER_ALLOWED):
            return f"points at this machine or a link-local address ({address})"
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
    # A TOML file of upstream accounts (catalogue.accounts); unset: the one KIE_* account.
    upstreams_file: Path | None = None
    imgbb_api_key: SecretStr | None = None
    imgbb_base_url: str = "https://api.imgbb.com"
    # Where test-mode keys' jobs go (`soraq clients create --test`): a soraq sandbox standing
    # in for Kie and imgbb, whatever KIE_BASE_URL says. Empty: test-mode keys are refused.
    test_mode_kie_url: str = ""
    public_url: str | None = None  # how Kie reaches /kie/callback; unset: no callbacks
    kie_webhook_hmac_key: SecretStr | None = None  # set when the Kie account signs callbacks
    # Where fal.ai publishes the public keys its webhooks are signed with (Ed25519, JWKS).
    fal_jwks_url: str = "https://rest.alpha.fal.ai/.well-known/jwks.json"
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
    # Requests a client may hold open per API process (event streams, `Prefer: wait`), and
    # all clients together: well under the server's API_CONNECTION_LIMIT, so /healthz, POST
    # /jobs and the admin side always find a connection.
    client_max_held: int = Field(20, ge=1)
    max_held: int = Field(1000, ge=1, le=API_CONNECTION_LIMIT // 2)
    idempotency_ttl: float = Field(86400.0, gt=0)
    webhook_allow_http: bool = False  # plain http receivers: development only
    # CIDRs exempt from the private-address guard for URLs a *client* gives (webhooks, input
    # URLs). soraq's own outbound calls have their own allowance (UPSTREAM_ALLOWED_NETWORKS):
    # opening the compose network for the sandbox must not open Postgres to every webhook.
    webhook_allowed_networks: str = ""
    webhook_timeout: float = Field(10.0, gt=0)  # the whole exchange, not each read
    webhook_max_in_flight_per_host: int = Field(4, ge=1)  # across every worker
    # Seconds before each attempt: the spec's schedule (immediately, 5 s, 5 min, 30 min, 2 h, …).
    webhook_retry_schedule: str = "0,5,300,1800,7200,18000,36000,36000"

    # CIDRs soraq itself may reach past the private-address guard: result downloads (the
    # sandbox's or a storage server's files on a private network) and the operator's webhook.
    upstream_allowed_networks: str = ""

    # Operators: the admin API and dashboard take this token; unset or blank, they are closed.
    admin_token: SecretStr | None = None
    # Proxies whose X-Forwarded-For/-Proto are believed (addresses or CIDRs, comma-separated;
    # e.g. the load balancer's). Empty: none — the peer's own address is the client's.
    trusted_proxies: str = ""
    # Server-side half of the dashboard's session-signing key (the other half is the admin
    # token). Unset on the embedded default: generated once into var/session-secret.
    session_secret: SecretStr | None = None
    # /metrics: a bearer token (unset: open, as Prometheus scrapes usually are on a private
    # network) and how long the figures read from the database are reused.
    metrics_token: SecretStr | None = None
    # Production refuses an open /metrics (client names, Kie's balance) unless this says so.
    metrics_public: bool = False
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
    # Finished jobs' data (prompt, inputs, metadata, files) is erased after this many days,
    # the row kept as a tombstone for usage. Unset: kept until DELETE /jobs/{id} or a purge.
    job_retention_days: float | None = Field(None, gt=0)

    # A worker's own /metrics port (Kubernetes: workers do not share the API's metrics
    # folder, so Prometheus scrapes each worker pod). Unset: none.
    worker_metrics_port: int | None = Field(None, ge=1, le=65535)
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
            if name == "KIE_API_KEY" and self.upstreams_file is not None:
                continue  # the accounts' keys: catalogue.accounts holds them to the same rules
            if key is None or not key.get_secret_value():
                problems.append(f"{name} is not set")
            elif key.get_secret_value() == sandbox_key:
                problems.append(f"{name} is the sandbox key")
        for name, url in (
            ("KIE_BASE_URL", self.kie_base_url),
            ("IMGBB_BASE_URL", self.imgbb_base_url),
            ("KIE_FILE_UPLOAD_URL", self.kie_file_upload_url),
            ("FAL_JWKS_URL", self.fal_jwks_url),
        ):
            problem = upstream_url_problem(url)
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
            token = self.admin_token.get_secret_value()
            if len(token) < MIN_ADMIN_TOKEN:
                problems.append(f"ADMIN_TOKEN is shorter than {MIN_ADMIN_TOKEN} characters")
            elif weak_secret(token):
                problems.append("ADMIN_TOKEN is trivially weak (a few characters repeated)")
        secret = self.session_secret.get_secret_value() if self.session_secret else ""
        if len(secret) < MIN_ADMIN_TOKEN:
            # It keys dashboard sessions and the signed content links every process must
            # accept: a secret generated per machine would not do.
            problems.append(
                f"SESSION_SECRET must be set ({MIN_ADMIN_TOKEN}+ random characters, the same "
                "on every API and worker process)"
            )
        elif weak_secret(secret):
            problems.append("SESSION_SECRET is trivially weak (blank or a few characters repeated)")
        if self.metrics_token is None and not self.metrics_public:
            problems.append(
                "METRICS_TOKEN is not set: /metrics would show every client's name and Kie's "
                "balance to anyone (set it, or METRICS_PUBLIC=true to say it is meant)"
            )
        elif self.metrics_token is not None and weak_secret(self.metrics_token.get_secret_value()):
            problems.append("METRICS_TOKEN is trivially weak (a few characters repeated)")
        if self.test_mode_kie_url:
            problem = _test_mode_url_problem(self.test_mode_kie_url)
            if problem:
                problems.append(f"TEST_MODE_KIE_URL {problem}")
        if self.webhook_allow_http:
            problems.append("WEBHOOK_ALLOW_HTTP must be false (webhooks go over https)")
        problems += network_problems("WEBHOOK_ALLOWED_NETWORKS", self.webhook_allowed_networks)
        problems += network_problems("UPSTREAM_ALLOWED_NETWORKS", self.upstream_allowed_networks)
        url_password = urlsplit(self.database_url).password
        for name, password in (
            # A URL's password is percent-encoded: change%2Dme is change-me.
            ("DATABASE_URL", unquote(url_password) if url_password is not None else None),
            ("POSTGRES_PASSWORD", self.postgres_password),
        ):
            if password is not None and password.strip() in EXAMPLE_PASSWORDS:
                problems.append(f"{name} uses the example password from .env.example")
        return problems

    @property
    def webhook_schedule(self) -> list[float]:
        return [float(part) for part in self.webhook_retry_schedule.split(",") if part.strip()]

    @property
    def client_networks(self) -> list[IPv4Network | IPv6Network]:
        """Private networks a client's URLs (webhooks, inputs) may point into."""
        return _networks(self.webhook_allowed_networks)

    @property
    def upstream_networks(self) -> list[IPv4Network | IPv6Network]:
        """Private networks soraq's own downloads and operator events may reach."""
        return _networks(self.upstream_allowed_networks)

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
