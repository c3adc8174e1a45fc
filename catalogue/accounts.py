"""Upstream accounts: where createTask goes, each with its own limits, balance and pause.

With no UPSTREAMS_FILE, one account named `kie` from the KIE_* settings — exactly soraq as it
was. With one, a TOML file of `[[accounts]]` tables (README: "Accounts and failover"):

    [[accounts]]
    name = "kie-main"          # shown in history, /models and logs
    provider = "kie"           # kie | kie-compatible (a Kie-shaped API at another address)
                               # | fal (fal.ai's queue API: catalogue/fal.toml's models)
    base_url = "https://api.kie.ai"
    key_env = "KIE_API_KEY"    # the key is read from this variable, never from the file
    create_rate = "20/10s"
    max_in_flight = 100
    priority = 1               # lower first
    models = "all"             # or a list of soraq model ids

Admission gives each job to the first account by priority that serves its model and has room;
the job is pinned to it once its createTask is sent (worker.admission, worker.submit).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from catalogue.fal import fal_routes
from core.config import SANDBOX_KIE_KEY, Rate, Settings, parse_rate, upstream_url_problem
from core.once import per_process

DEFAULT_ACCOUNT = "kie"  # the KIE_* account's name (its scheduler row predates accounts)
PROVIDERS = ("kie", "kie-compatible", "fal")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


@dataclass(frozen=True)
class Account:
    name: str
    provider: str
    base_url: str
    key: SecretStr = field(repr=False)
    create_rate: Rate
    max_in_flight: int
    priority: int
    file_upload_url: str
    models: frozenset[str] | None = None  # None: every model of the catalogue

    def serves(self, model_id: str) -> bool:
        return self.models is None or model_id in self.models

    def takes(self, model_id: str, fal_refusal: str | None) -> bool:
        """Whether a job of the model may go here: a fal account takes only what fal can
        make (jobs.fal_refusal: a value or input beyond fal's route)."""
        return self.serves(model_id) and not (fal_refusal and self.provider == "fal")


class _AccountEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    provider: str = "kie"
    base_url: str
    key_env: str
    create_rate: str = "20/10s"
    max_in_flight: int = Field(100, ge=1)
    priority: int = 1
    file_upload_url: str | None = None
    models: str | list[str] = "all"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("1–32 of a-z, 0-9, '-' and '_', starting with a letter or digit")
        return value

    @field_validator("provider")
    @classmethod
    def _provider(cls, value: str) -> str:
        if value not in PROVIDERS:
            raise ValueError(f"one of {', '.join(PROVIDERS)}")
        return value

    @field_validator("base_url", "file_upload_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"https?://[^/\s]+", value):
            raise ValueError("an http(s):// URL")
        return value

    @field_validator("create_rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @field_validator("models")
    @classmethod
    def _models(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str) and value != "all":
            raise ValueError('"all" or a list of model ids')
        return value


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accounts: list[_AccountEntry] = Field(min_length=1)


def accounts(settings: Settings) -> tuple[Account, ...]:
    """Every account, by priority (then as written). Raises ValueError naming what is wrong
    (never a key's value)."""
    if settings.upstreams_file is None:
        key = settings.kie_api_key or SecretStr("")
        return (
            Account(
                DEFAULT_ACCOUNT,
                "kie",
                settings.kie_base_url,
                key,
                settings.create_rate,
                settings.kie_max_in_flight,
                1,
                settings.kie_file_upload_url,
            ),
        )
    found = _from_file(settings.upstreams_file, settings.kie_file_upload_url)
    if settings.environment == "production":
        _refuse_unsafe(found)
    return found


def _refuse_unsafe(found: tuple[Account, ...]) -> None:
    """Production holds every account to what it holds KIE_* to: https to a public address,
    and never the sandbox's key."""
    problems = []
    for account in found:
        for what, url in (
            ("base_url", account.base_url),
            ("file_upload_url", account.file_upload_url),
        ):
            problem = upstream_url_problem(url)
            if problem:
                problems.append(f"account {account.name}: {what} {problem}")
        if account.key.get_secret_value() == SANDBOX_KIE_KEY:
            problems.append(f"account {account.name}: its key is the sandbox key")
    if problems:
        raise ValueError("production settings refused: " + "; ".join(problems))


@per_process
def _from_file(path: Path, default_upload_url: str) -> tuple[Account, ...]:
    try:
        raw = tomllib.loads(path.read_text())
        entries = _File.model_validate(raw).accounts
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ValueError(f"UPSTREAMS_FILE {path}: {exc}") from None
    names = [entry.name for entry in entries]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"UPSTREAMS_FILE {path}: account names repeat: {', '.join(repeated)}")
    found = []
    for entry in entries:
        key = os.environ.get(entry.key_env, "")
        if not key.strip():
            raise ValueError(
                f"UPSTREAMS_FILE {path}: account {entry.name}: {entry.key_env} is not set"
            )
        base_url = entry.base_url.rstrip("/")
        upload = entry.file_upload_url or (
            default_upload_url if entry.provider == "kie" else base_url
        )
        served = None if entry.models == "all" else frozenset(entry.models)
        if entry.provider == "fal":
            # fal serves the models catalogue/fal.toml maps, and no others.
            routed = frozenset(fal_routes())
            unrouted = sorted((served or routed) - routed)
            if unrouted:
                raise ValueError(
                    f"UPSTREAMS_FILE {path}: account {entry.name}: no fal route for "
                    f"{', '.join(unrouted)} (catalogue/fal.toml)"
                )
            served = served or routed
        found.append(
            Account(
                entry.name,
                entry.provider,
                base_url,
                SecretStr(key),
                parse_rate(entry.create_rate),
                entry.max_in_flight,
                entry.priority,
                upload,
                served,
            )
        )
    return tuple(sorted(found, key=lambda account: account.priority))


def account_named(settings: Settings, name: str | None) -> Account:
    """A job's account; a name no longer configured (the file changed) is the first one's."""
    every = accounts(settings)
    return next((account for account in every if account.name == name), every[0])
