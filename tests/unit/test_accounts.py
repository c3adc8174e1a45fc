"""Upstream accounts (UPSTREAMS_FILE): what the file may say, what it may not, and how
admission shares jobs among accounts."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from api.account_routes import pinned_route, routes
from api.schemas import JobCreate
from catalogue import get_catalogue
from catalogue.accounts import DEFAULT_ACCOUNT, accounts
from catalogue.fal import fal_routes
from core.config import SANDBOX_KIE_KEY, Rate, Settings
from core.errors import InvalidRequest
from models.base import utcnow
from models.job import Job
from models.scheduler import SchedulerState
from tests.unit.test_admission import queue
from upstreams.errors import ExternalError
from worker import account
from worker.admission import admit, coalesced

TWO = """
[[accounts]]
name = "backup"
provider = "kie-compatible"
base_url = "https://kie-compatible.example/"
key_env = "SORAQ_TEST_BACKUP_KEY"
create_rate = "5/10s"
max_in_flight = 7
priority = 2
models = ["veo3.1-fast/text-to-video"]

[[accounts]]
name = "main"
base_url = "https://api.kie.ai"
key_env = "SORAQ_TEST_MAIN_KEY"
create_rate = "3/10s"
"""


def _settings(tmp_path: Path, text: str | None = None, **values: object) -> Settings:
    if text is not None:
        path = tmp_path / f"upstreams-{abs(hash(text))}.toml"
        path.write_text(text)
        values["upstreams_file"] = path
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SORAQ_TEST_MAIN_KEY", "sk-main-secret")
    monkeypatch.setenv("SORAQ_TEST_BACKUP_KEY", "sk-backup-secret")


def test_without_a_file_the_kie_settings_are_the_one_account(tmp_path: Path) -> None:
    (only,) = accounts(
        _settings(
            tmp_path,
            kie_api_key="sk-x",
            kie_base_url="https://api.kie.ai",
            kie_create_rate="20/10s",
            kie_max_in_flight=9,
        )
    )
    assert (only.name, only.provider, only.base_url) == (
        DEFAULT_ACCOUNT,
        "kie",
        "https://api.kie.ai",
    )
    assert (only.create_rate, only.max_in_flight, only.models) == (Rate(20, 10.0), 9, None)
    assert only.key.get_secret_value() == "sk-x"


def test_a_file_gives_accounts_by_priority_with_keys_from_the_environment(tmp_path: Path) -> None:
    main, backup = accounts(_settings(tmp_path, TWO))
    assert (main.name, main.priority, main.create_rate, main.max_in_flight) == (
        "main",
        1,
        Rate(3, 10.0),
        100,
    )
    assert main.key == SecretStr("sk-main-secret")
    assert (backup.name, backup.base_url, backup.file_upload_url) == (
        "backup",
        "https://kie-compatible.example",
        "https://kie-compatible.example",  # a Kie-compatible API uploads where it lives
    )
    assert main.file_upload_url == "https://kieai.redpandaai.co"  # Kie's own upload host
    assert backup.serves("veo3.1-fast/text-to-video")
    assert not backup.serves("kling-2.6/video")
    assert main.serves("kling-2.6/video")
    assert "sk-main-secret" not in repr(main)
    assert "sk-backup-secret" not in repr(backup)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (("SORAQ_TEST_MAIN_KEY", "SORAQ_TEST_UNSET_KEY"), "SORAQ_TEST_UNSET_KEY is not set"),
        (
            ('provider = "kie-compatible"', 'provider = "replicate"'),
            "one of kie, kie-compatible, fal",
        ),
        (('name = "backup"', 'name = "main"'), "account names repeat: main"),
        (('name = "backup"', 'name = "Back Up!"'), "a-z, 0-9"),
        (('create_rate = "5/10s"', 'create_rate = "fast"'), "a rate looks like 20/10s"),
        (("max_in_flight = 7", "max_in_flight = 0"), "greater than or equal to 1"),
        (("priority = 2", 'priority = 2\nkey = "sk-in-the-file"'), "Extra inputs"),
        (('base_url = "https://api.kie.ai"', 'base_url = "ftp://x"'), "an http(s):// URL"),
        (('models = ["veo3.1-fast/text-to-video"]', 'models = "some"'), '"all" or a list'),
        (("[[accounts]]", "[[accounts"), "UPSTREAMS_FILE"),
    ],
)
def test_a_wrong_file_is_refused_naming_what_is_wrong(
    tmp_path: Path, change: tuple[str, str], said: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(said)) as refused:
        accounts(_settings(tmp_path, TWO.replace(*change, 1)))
    assert "sk-main-secret" not in str(refused.value)


def test_admission_fills_the_first_account_then_the_next(engine: Engine, tmp_path: Path) -> None:
    config = _settings(tmp_path, TWO)
    with Session(engine) as session:
        queue(session, {"x": 10})
        first = admit(session, config, utcnow())
        session.commit()
        placed = Counter(
            session.scalars(select(Job.account).where(Job.id.in_(first.admitted))).all()
        )
    # main's window holds 3, backup's 5: eight go now, each to the account that has room.
    assert placed == {"main": 3, "backup": 5}


def _main_refused(
    session: Session, config: Settings, jobs: int, model: str | None = None
) -> datetime:
    """The accounts' rows, then `jobs` queued (of `model`), then main refused: its first
    probe is due ACCOUNT_PROBE_INTERVAL from now."""
    now = utcnow()
    admit(session, config, now)  # the accounts' rows, before any job is queued
    session.commit()
    queue(session, {"x": jobs})
    if model is not None:
        for job in session.scalars(select(Job)):
            job.model = model
    refusal = ExternalError("kie_insufficient_credits", "no credits", retryable=False)
    account.pause_for(session, "main", refusal, now, config)
    session.commit()
    return now


def test_a_refused_account_takes_nothing_before_its_probe_and_the_rest_go_elsewhere(
    engine: Engine, tmp_path: Path
) -> None:
    config = _settings(tmp_path, TWO, account_probe_interval=60)
    with Session(engine) as session:
        now = _main_refused(session, config, 4)
        round_ = admit(session, config, now)
        session.commit()
        placed = Counter(
            session.scalars(select(Job.account).where(Job.id.in_(round_.admitted))).all()
        )
    assert placed == {"backup": 4}  # main waits for its probe time; its jobs go to backup


def test_a_model_no_other_account_serves_waits_for_its_account(
    engine: Engine, tmp_path: Path
) -> None:
    config = _settings(tmp_path, TWO, account_probe_interval=60)
    with Session(engine) as session:
        now = _main_refused(session, config, 3, "kling-2.6/text-to-video")  # backup: Veo only
        assert admit(session, config, now).admitted == []  # backup does not serve the model
        session.commit()
        later = admit(session, config, now + timedelta(seconds=61))
        session.commit()
        placed = Counter(
            session.scalars(select(Job.account).where(Job.id.in_(later.admitted))).all()
        )
    assert placed == {"main": 1}  # at the probe's time, one job probes the refused account


def test_production_holds_every_account_to_https_and_a_real_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SORAQ_TEST_BACKUP_KEY", SANDBOX_KIE_KEY)
    text = TWO.replace("https://kie-compatible.example/", "http://kie-compatible.example/")
    config = _settings(tmp_path, text)
    object.__setattr__(config, "environment", "production")  # the rest of production aside
    with pytest.raises(ValueError, match="account backup: base_url must be an https://") as no:
        accounts(config)
    assert "account backup: its key is the sandbox key" in str(no.value)


def test_a_pinned_job_waits_for_its_account_while_the_rest_go_elsewhere(
    engine: Engine, tmp_path: Path
) -> None:
    config = _settings(tmp_path, TWO, account_probe_interval=60)
    with Session(engine) as session:
        now = _main_refused(session, config, 4)
        pinned = session.scalars(select(Job).order_by(Job.created_at).limit(1)).one()
        pinned.route = "main"
        pinned_id = pinned.id
        session.commit()
        round_ = admit(session, config, now)
        session.commit()
        assert pinned_id not in round_.admitted
        assert len(round_.admitted) == 3  # the others went to backup
        later = admit(session, config, now + timedelta(seconds=61))
        session.commit()
        assert pinned_id in later.admitted
        # main's probe is the job pinned to it
        assert session.scalar(select(Job.account).where(Job.id == pinned_id)) == "main"


def _job(**fields: object) -> JobCreate:
    return JobCreate.model_validate({"prompt": "a cat", **fields})


@pytest.mark.parametrize(
    ("fields", "continued", "pinned"),
    [
        ({}, [], None),  # anywhere serving the model
        ({"route": "backup"}, [], "backup"),
        ({"failover": False}, [], "main"),  # the model's first route, by priority
        ({}, ["backup"], "backup"),  # a continued task is at one account only
        ({"route": "backup"}, ["backup"], "backup"),
    ],
)
def test_where_a_new_job_is_pinned(
    tmp_path: Path, fields: dict[str, object], continued: list[str], pinned: str | None
) -> None:
    spec = get_catalogue().get("veo3.1-fast/text-to-video")
    config = _settings(tmp_path, TWO)
    assert pinned_route(_job(**fields), spec, config, continued) == pinned


@pytest.mark.parametrize(
    ("model", "fields", "continued", "said"),
    [
        (
            "veo3.1-fast/text-to-video",
            {"route": "elsewhere"},
            [],
            "no such account; this model's routes are: main, backup",
        ),
        (
            "kling-2.6/text-to-video",
            {"route": "backup"},
            [],
            "account backup does not serve kling-2.6/text-to-video; this model's routes are: main",
        ),
        (
            "veo3.1-fast/text-to-video",
            {"route": "main"},
            ["backup"],
            "the task this job continues is at account backup, not main",
        ),
        ("veo3.1-fast/text-to-video", {}, ["main", "backup"], "at different accounts"),
        ("kling-2.6/text-to-video", {}, ["backup"], "at account backup, which no longer"),
    ],
)
def test_a_route_that_cannot_be_kept_is_refused_with_the_routes_there_are(
    tmp_path: Path, model: str, fields: dict[str, object], continued: list[str], said: str
) -> None:
    config = _settings(tmp_path, TWO)
    with pytest.raises(InvalidRequest, match=re.escape(said)):
        pinned_route(_job(**fields), get_catalogue().get(model), config, continued)


def test_a_model_no_account_serves_is_refused(tmp_path: Path) -> None:
    only_veo = TWO.split('[[accounts]]\nname = "main"')[0]
    config = _settings(tmp_path, only_veo)
    spec = get_catalogue().get("kling-2.6/text-to-video")
    with pytest.raises(InvalidRequest, match="no upstream account of this service serves"):
        pinned_route(_job(), spec, config, [])


def test_each_accounts_window_gets_its_own_wake_up(engine: Engine, tmp_path: Path) -> None:
    config = _settings(tmp_path, TWO)
    now = utcnow()
    with Session(engine) as session:
        admit(session, config, now)  # the accounts' rows
        # main's 3 tokens were taken 5 s ago, backup's 5 just now: both windows are full.
        for name, count, ago in (("main", 3, 5.0), ("backup", 5, 0.0)):
            row = session.get(SchedulerState, name)
            assert row is not None
            row.creates = [now.timestamp() - ago] * count
        session.commit()
        queue(session, {"x": 10})
        full = admit(session, config, now)
        session.commit()
    assert full.admitted == []
    # main's tokens free ~5 s on, backup's ~10 s on: a wake-up for each, not one for both.
    assert [round(w) for w in full.wakes_in] == [5, 10], full.wakes_in


def test_wake_ups_closer_than_one_rounds_reach_are_sent_once() -> None:
    assert coalesced([1.0, 1.1, 0.2, 3.0]) == [0.2, 1.0, 3.0]
    assert coalesced([]) == []


FAL = """
[[accounts]]
name = "fal"
provider = "fal"
base_url = "https://queue.fal.run"
key_env = "SORAQ_TEST_MAIN_KEY"
"""


def test_a_fal_account_serves_the_models_fal_has_routes_for(tmp_path: Path) -> None:
    (fal,) = accounts(_settings(tmp_path, FAL))
    assert fal.provider == "fal"
    assert fal.models == frozenset(fal_routes())
    assert fal.serves("veo3.1-fast/text-to-video")
    assert not fal.serves("grok-imagine/text-to-video")  # no route in catalogue/fal.toml
    listed = FAL + 'models = ["grok-imagine/text-to-video"]\n'
    with pytest.raises(ValueError, match="no fal route for grok-imagine/text-to-video"):
        accounts(_settings(tmp_path, listed))
    # GET /models shows what fal cannot make: Kling 2.1's longer prompts stay with Kie.
    (shown,) = routes("kling/v2-1-pro", (fal,), ((fal.name, None, False),))
    assert (shown["upstream_model"], shown["inputs"], shown["prompt_max"]) == (
        "fal-ai/kling-video/v2.1/pro/image-to-video",
        ["first_frame"],
        2500,
    )


KIE_AND_FAL = (
    TWO[TWO.index('[[accounts]]\nname = "main"') :]
    + FAL.replace('key_env = "SORAQ_TEST_MAIN_KEY"', 'key_env = "SORAQ_TEST_BACKUP_KEY"')
    + "priority = 2\n"
)


def test_a_job_fal_cannot_make_cannot_be_pinned_to_fal_and_says_why(tmp_path: Path) -> None:
    spec = get_catalogue().get("bytedance/seedance-2")
    why = fal_routes()[spec.id].refusal("x", {"resolution": "1080p"}, [])
    config = _settings(tmp_path, KIE_AND_FAL)
    with pytest.raises(InvalidRequest) as pinned:
        pinned_route(_job(route="fal"), spec, config, [], why)
    assert pinned.value.message == (
        "account fal cannot take this job: fal serves bytedance/seedance-2 with resolution "
        "480p, 720p only; this model's routes are: main"
    )
    assert pinned_route(_job(), spec, config, [], why) is None  # main may take it
    assert pinned_route(_job(failover=False), spec, config, [], why) == "main"
    # Where only fal serves the model, such a job is refused at once, saying why.
    with pytest.raises(InvalidRequest) as nowhere:
        pinned_route(_job(), spec, _settings(tmp_path, FAL), [], why)
    assert nowhere.value.message.endswith(
        "serves bytedance/seedance-2 with this request: fal serves bytedance/seedance-2 with "
        "resolution 480p, 720p only"
    )


def test_a_fal_account_is_given_only_the_jobs_fal_can_make(engine: Engine, tmp_path: Path) -> None:
    config = _settings(tmp_path, KIE_AND_FAL, account_probe_interval=60)
    with Session(engine) as session:
        now = _main_refused(session, config, 4)  # main cannot take any: fal may
        beyond = session.scalars(select(Job).order_by(Job.created_at).limit(2)).all()
        for job in beyond:
            job.fal_refusal = "fal serves it at 720p only"
        kept = {job.id for job in beyond}
        session.commit()
        admitted = admit(session, config, now).admitted
        session.commit()
        placed = {
            job.id: job.account for job in session.scalars(select(Job).where(Job.id.in_(admitted)))
        }
    assert set(placed.values()) == {"fal"}
    assert len(placed) == 2
    assert not kept & set(placed)  # the two fal cannot make wait for main
