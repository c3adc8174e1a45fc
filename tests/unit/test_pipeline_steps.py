"""`advance` in process: a real database session, every upstream family mocked with respx,
through each branch of the pipeline (no worker, no broker, no subprocess)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from catalogue import get_catalogue
from core.config import Settings
from models.base import utcnow
from models.event import JobEvent
from models.job import Job, JobStatus
from models.scheduler import SchedulerState
from sandbox.videos import sample_mp4
from upstreams import kie_upstreams
from upstreams.imgbb import ImgbbClient
from worker.pipeline import UpstreamClients, advance

KIE = "https://kie.test"

# Per family: the create route, the read route, and bodies of each read outcome.
FAMILIES: dict[str, dict[str, Any]] = {
    "kling-2.6/text-to-video": {
        "create": "/api/v1/jobs/createTask",
        "read": "/api/v1/jobs/recordInfo",
        "success": {
            "state": "success",
            "resultJson": json.dumps({"resultUrls": ["https://cdn.test/v.mp4"]}),
        },
        "fail": {"state": "fail", "failCode": "content_policy", "failMsg": "flagged"},
        "odd": {"state": "rendering"},
        "running": {"state": "generating", "progress": 40},
    },
    "veo3.1-fast/text-to-video": {
        "create": "/api/v1/veo/generate",
        "read": "/api/v1/veo/record-info",
        "success": {"successFlag": 1, "response": {"resultUrls": ["https://cdn.test/v.mp4"]}},
        "fail": {"successFlag": 3, "errorCode": 400, "errorMessage": "flagged"},
        "odd": {"successFlag": 7},
        "running": {"successFlag": 0},
    },
    "runway/video": {
        "create": "/api/v1/runway/generate",
        "read": "/api/v1/runway/record-detail",
        "success": {"state": "success", "videoInfo": {"videoUrl": "https://cdn.test/v.mp4"}},
        "fail": {"state": "fail", "failMsg": "flagged"},
        "odd": {"state": "rendering"},
        "running": {"state": "queueing"},
    },
}
MODELS = list(FAMILIES)


def ok(data: Any) -> dict[str, Any]:
    return {"code": 200, "msg": "success", "data": data}


@pytest.fixture
def settings() -> Settings:
    return Settings(
        public_url=None,
        kie_base_url=KIE,
        pending_grace=60,
        max_attempts=3,
        account_probe_interval=60,
    )


@pytest.fixture
def clients() -> UpstreamClients:
    upstreams = kie_upstreams(KIE, "k", timeout=2)
    return UpstreamClients(
        upstreams, ImgbbClient("https://imgbb.test", "i", timeout=2, expiration=60)
    )


@pytest.fixture(autouse=True)
def cdn(monkeypatch: pytest.MonkeyPatch) -> None:
    """The upstream's result host: resolved to a public address (no DNS in tests) and serving
    a real MP4 through respx, so the archive step runs for real."""
    from core.netguard import CheckedURL, check_scheme
    from worker import fetch as fetch_module

    def resolve(url: str, **_: object) -> CheckedURL:
        scheme, host, port = check_scheme(url, allow_http=True)
        return CheckedURL(url, scheme, host, port, "93.184.216.34")

    monkeypatch.setattr(fetch_module, "resolve", resolve)


def cdn_file(name: str = "v.mp4", data: bytes | None = None) -> None:
    respx.get(f"https://93.184.216.34/{name}").respond(
        content=sample_mp4() if data is None else data, headers={"content-type": "video/mp4"}
    )


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as opened:
        yield opened


def new_job(session: Session, model: str, **values: Any) -> str:
    now = utcnow()
    # The input as the API stores it: validated, defaults filled in.
    stored = get_catalogue().get(model).validate({"prompt": "a lighthouse"})
    job = Job(
        model=model,
        input={"prompt": "a lighthouse", **stored},
        created_at=now,
        updated_at=now,
        next_check_at=now,
        admitted_at=now,
        **values,
    )
    session.add(job)
    session.commit()
    return job.id


def reload(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id, populate_existing=True)
    assert job is not None
    return job


def submitted(session: Session, model: str, clients: UpstreamClients, settings: Settings) -> str:
    family = FAMILIES[model]
    respx.post(KIE + family["create"]).respond(json=ok({"taskId": "t-1"}))
    job_id = new_job(session, model)
    advance(session, job_id, clients, settings)
    job = reload(session, job_id)
    assert job.status == JobStatus.WAITING, job.error_message
    assert job.kie_task_id == "t-1"
    return job_id


@pytest.mark.parametrize("model", MODELS)
@respx.mock
def test_a_job_is_created_in_its_familys_shape(
    session: Session, clients: UpstreamClients, settings: Settings, model: str
) -> None:
    submitted(session, model, clients, settings)
    body = json.loads(respx.calls.last.request.content)
    if model.startswith("kling"):
        assert body["model"] == "kling-2.6/text-to-video"
        assert body["input"]["duration"] == "5"  # sent as Kie's string
    elif model.startswith("veo"):
        assert body["model"] == "veo3_fast"
        assert body["generationType"] == "TEXT_2_VIDEO"
        assert "input" not in body
    else:
        assert "model" not in body
        assert body["prompt"] == "a lighthouse"


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    ("outcome", "status", "code"),
    [
        ("success", JobStatus.SUCCEEDED, None),
        ("fail", JobStatus.FAILED, "kie_task_failed"),
        ("odd", JobStatus.GENERATING, None),
        ("running", None, None),
    ],
)
@respx.mock
def test_reads_map_every_state_of_every_family(
    session: Session,
    clients: UpstreamClients,
    settings: Settings,
    model: str,
    outcome: str,
    status: JobStatus | None,
    code: str | None,
) -> None:
    job_id = submitted(session, model, clients, settings)
    family = FAMILIES[model]
    respx.get(KIE + family["read"]).respond(json=ok({"taskId": "t-1", **family[outcome]}))
    cdn_file()
    advance(session, job_id, clients, settings)
    job = reload(session, job_id)
    if status is None:  # a known in-progress state
        assert job.status in (JobStatus.WAITING, JobStatus.QUEUING, JobStatus.GENERATING)
    else:
        assert job.status == status
    assert job.error_code == code
    if status == JobStatus.SUCCEEDED:  # archived before it succeeded
        assert job.result is not None
        [video] = job.result["videos"]
        assert video["source_url"] == "https://cdn.test/v.mp4"
        assert video["sha256"] == hashlib.sha256(sample_mp4()).hexdigest()
        assert video["has_audio"] is True
        assert video["duration_s"] == 1.0


@pytest.mark.parametrize("model", MODELS)
@respx.mock
def test_a_non_http_result_url_fails_the_job_instead_of_reaching_a_client(
    session: Session, clients: UpstreamClients, settings: Settings, model: str
) -> None:
    job_id = submitted(session, model, clients, settings)
    family = FAMILIES[model]
    hostile = json.loads(
        json.dumps(family["success"]).replace("https://cdn.test/v.mp4", "javascript:alert(1)")
    )
    respx.get(KIE + family["read"]).respond(json=ok({"taskId": "t-1", **hostile}))
    advance(session, job_id, clients, settings)
    assert reload(session, job_id).error_code == "upstream_bad_output"


@pytest.mark.parametrize("model", MODELS)
@respx.mock
def test_an_early_404_is_pending_and_only_a_late_one_fails(
    session: Session, clients: UpstreamClients, settings: Settings, model: str
) -> None:
    job_id = submitted(session, model, clients, settings)
    respx.get(KIE + FAMILIES[model]["read"]).respond(json={"code": 404, "msg": "not found"})
    advance(session, job_id, clients, settings)
    assert (
        reload(session, job_id).status == JobStatus.WAITING
    )  # within PENDING_GRACE: still working
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(submitted_at=utcnow() - timedelta(seconds=settings.pending_grace + 1))
    )
    session.commit()
    advance(session, job_id, clients, settings)
    assert reload(session, job_id).error_code == "kie_task_not_found"


@pytest.mark.parametrize("model", MODELS)
@respx.mock
def test_a_transient_create_error_requeues_and_gives_up_its_admission(
    session: Session, clients: UpstreamClients, settings: Settings, model: str
) -> None:
    respx.post(KIE + FAMILIES[model]["create"]).respond(json={"code": 500, "msg": "busy"})
    job_id = new_job(session, model)
    advance(session, job_id, clients, settings)
    job = reload(session, job_id)
    assert job.status == JobStatus.QUEUED
    assert job.failures == 1
    assert job.admitted_at is None  # it holds no createTask slot while it backs off


@respx.mock
def test_a_missing_field_500_is_not_retried(
    session: Session, clients: UpstreamClients, settings: Settings
) -> None:
    respx.post(KIE + "/api/v1/jobs/createTask").respond(
        json={"code": 500, "msg": "This field is required"}
    )
    job_id = new_job(session, "kling-2.6/text-to-video")
    advance(session, job_id, clients, settings)
    assert reload(session, job_id).error_code == "kie_invalid_request"


@respx.mock
def test_an_unreadable_create_answer_is_never_resubmitted(
    session: Session, clients: UpstreamClients, settings: Settings
) -> None:
    route = respx.post(KIE + "/api/v1/veo/generate").respond(text='{"code": 200, "data": {')
    job_id = new_job(session, "veo3.1-fast/text-to-video")
    advance(session, job_id, clients, settings)
    advance(session, job_id, clients, settings)
    assert reload(session, job_id).error_code == "submit_unknown"
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("code", "reason"),
    [(401, "kie_unauthorized"), (402, "kie_insufficient_credits"), (433, "kie_key_limit")],
)
@respx.mock
def test_an_account_refusal_pauses_admission_instead_of_failing_jobs(
    session: Session, clients: UpstreamClients, settings: Settings, code: int, reason: str
) -> None:
    route = respx.post(KIE + "/api/v1/jobs/createTask").respond(json={"code": code, "msg": "no"})
    first = new_job(session, "kling-2.6/text-to-video")
    advance(session, first, clients, settings)
    job = reload(session, first)
    assert job.status == JobStatus.QUEUED
    assert job.waiting_reason == reason
    assert job.failures == 0
    state = session.get(SchedulerState, "kie", populate_existing=True)
    assert state is not None
    assert state.account_reason == reason

    # Another job admitted meanwhile is not the probe: it waits, and Kie is not asked.
    second = new_job(session, "kling-2.6/text-to-video")
    advance(session, second, clients, settings)
    assert reload(session, second).status == JobStatus.QUEUED
    assert route.call_count == 1

    # The probe's turn: the account works again, and admission resumes for everyone.
    route.respond(json=ok({"taskId": "t-9"}))
    session.execute(update(SchedulerState).values(account_probe_job=second))
    session.execute(update(Job).where(Job.id == second).values(admitted_at=utcnow()))  # admitted
    session.commit()
    advance(session, second, clients, settings)
    assert reload(session, second).status == JobStatus.WAITING
    state = session.get(SchedulerState, "kie", populate_existing=True)
    assert state is not None
    assert state.account_reason is None
    assert reload(session, first).waiting_reason is None


def test_policy_is_pure(settings: Settings) -> None:
    from worker import policy

    assert policy.backoff(settings, 1, None, jitter=lambda a, b: b) == settings.retry_base_delay
    assert policy.backoff(settings, 30, None, jitter=lambda a, b: b) == settings.retry_max_delay
    assert policy.backoff(settings, 1, 99.0, jitter=lambda a, b: a) == 99.0
    assert policy.gives_up(settings, retryable=False, failures=1)
    assert policy.gives_up(settings, retryable=True, failures=settings.max_attempts)
    assert not policy.gives_up(settings, retryable=True, failures=1)
    assert policy.still_pending_allowed(settings, settings.pending_grace)
    assert not policy.still_pending_allowed(settings, settings.pending_grace + 0.1)


def test_after_a_callback_the_record_is_read_again_within_seconds() -> None:
    from worker import policy

    settings = Settings(public_url="https://soraq.example", callback_check_interval=60)
    # Kie's record can trail its callback: 1, 2, 4 and 8 s apart, then the safety net.
    follow_ups, at = [], 0.05
    for _ in range(5):
        delay = policy.check_interval(settings, elapsed=30, since_callback=at)
        follow_ups.append(round(delay, 2))
        at += delay
    assert follow_ups == [0.95, 2.0, 4.0, 8.0, 60.0]
    assert policy.check_interval(settings, elapsed=30) == 60


def test_httpx_is_not_used_for_real() -> None:
    # respx intercepts every call above; this documents that the base URL is not a real host.
    assert httpx.URL(KIE).host.endswith(".test")


@respx.mock
def test_a_veo_1080p_job_waits_for_get_1080p_video(
    session: Session, clients: UpstreamClients, settings: Settings
) -> None:
    job_id = submitted(session, "veo3.1-fast/text-to-video", clients, settings)
    respx.get(KIE + "/api/v1/veo/record-info").respond(
        json=ok(
            {
                "taskId": "t-1",
                "successFlag": 1,
                "paramJson": json.dumps({"resolution": "1080p"}),
                "response": {"resultUrls": ["https://cdn.test/720.mp4"], "resolution": "720p"},
            }
        )
    )
    later = respx.get(KIE + "/api/v1/veo/get-1080p-video").respond(
        json={"code": 422, "msg": "The 1080P video is being generated"}
    )
    advance(session, job_id, clients, settings)
    assert reload(session, job_id).status == JobStatus.GENERATING  # not done with a 720p file
    later.respond(json=ok({"resultUrl": "https://cdn.test/1080.mp4"}))
    cdn_file("1080.mp4")
    advance(session, job_id, clients, settings)
    job = reload(session, job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert job.result is not None
    assert job.result["videos"][0]["source_url"] == "https://cdn.test/1080.mp4"


@respx.mock
def test_a_result_that_is_not_video_fails_the_job_and_keeps_the_task_id(
    session: Session, clients: UpstreamClients, settings: Settings
) -> None:
    job_id = submitted(session, "kling-2.6/text-to-video", clients, settings)
    family = FAMILIES["kling-2.6/text-to-video"]
    respx.get(KIE + family["read"]).respond(json=ok({"taskId": "t-1", **family["success"]}))
    cdn_file(data=b"<html>not a video</html>")
    advance(session, job_id, clients, settings)
    job = reload(session, job_id)
    assert job.error_code == "upstream_bad_output"
    assert job.kie_task_id == "t-1"


@respx.mock
def test_a_result_over_the_size_cap_fails_as_too_large(
    session: Session, clients: UpstreamClients, settings: Settings
) -> None:
    job_id = submitted(session, "kling-2.6/text-to-video", clients, settings)
    family = FAMILIES["kling-2.6/text-to-video"]
    respx.get(KIE + family["read"]).respond(json=ok({"taskId": "t-1", **family["success"]}))
    cdn_file()
    small = settings.model_copy(update={"archive_max_bytes": 1000})
    advance(session, job_id, clients, small)
    assert reload(session, job_id).error_code == "archive_too_large"


@pytest.mark.parametrize("model", MODELS)
@respx.mock
def test_a_hostile_state_word_is_kept_short_and_the_job_keeps_going(
    session: Session, clients: UpstreamClients, settings: Settings, model: str
) -> None:
    job_id = submitted(session, model, clients, settings)
    family = FAMILIES[model]
    huge = "rendering\n" + "x" * 10_000
    odd = {k: huge for k in family["odd"]}  # the family's own state field, filled with junk
    respx.get(KIE + family["read"]).respond(json=ok({"taskId": "t-1", **odd}))
    advance(session, job_id, clients, settings)
    assert reload(session, job_id).status == JobStatus.GENERATING  # still working, not failed
    reasons = [
        e.reason or ""
        for e in session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)).all()
    ]
    assert all(len(r) < 100 and "\n" not in r for r in reasons), reasons


def test_a_job_whose_token_frees_a_moment_later_waits_for_it_keeping_its_admission(
    session: Session, settings: Settings
) -> None:
    """Its message ran a little before its token freed (the call it follows was answered
    late): the job keeps its admission and account and runs again with a countdown to that
    instant — Kie is not called early, and the token does not go back to the next round."""
    later: list[tuple[str, float]] = []
    upstreams = kie_upstreams(KIE, "k", timeout=2)
    clients = UpstreamClients(
        upstreams,
        ImgbbClient("https://imgbb.test", "i", timeout=2, expiration=60),
        advance_later=lambda job_id, seconds: later.append((job_id, seconds)),
    )
    # The window is full, and its oldest token frees in under a second (TOKEN_DUE).
    held = utcnow().timestamp() - settings.create_rate.window + 0.85
    session.merge(SchedulerState(name="kie", creates=[held] * settings.create_rate.count))
    session.commit()
    job_id = new_job(session, "kling-2.6/text-to-video", account="kie")
    with respx.mock():  # no route: a call to Kie would raise
        advance(session, job_id, clients, settings)
    job = reload(session, job_id)
    assert job.kie_task_id is None
    assert job.failures == 0
    assert (job.status, job.account) == (JobStatus.QUEUED, "kie")
    assert job.admitted_at is not None  # still admitted: the token stays this job's
    ((again, seconds),) = later
    assert again == job_id
    assert 0 < seconds <= 0.9  # less the time this test took to get there
    # A token further off than a moment sends the job back to admission, as before.
    session.merge(SchedulerState(name="kie", creates=[utcnow().timestamp()] * 20))
    session.commit()
    session.execute(update(Job).where(Job.id == job_id).values(next_check_at=utcnow()))
    session.commit()
    advance(session, job_id, clients, settings)
    assert reload(session, job_id).admitted_at is None
    assert len(later) == 1


def test_a_look_at_the_window_writes_nothing_back(session: Session, settings: Settings) -> None:
    """Reading the create window prunes the log it is given: the look before a claim must
    never write that log (read without the row's lock) back over tokens taken meanwhile."""
    from worker.admission import create_due_in

    now = utcnow().timestamp()
    stale, fresh = now - 60.0, now - 0.2  # one token long out of the window, one in it
    session.merge(SchedulerState(name="kie", creates=[stale, fresh]))
    session.commit()
    assert create_due_in(session, settings, "kie") == 0.0  # room: 19 of 20 free
    # Meanwhile another worker takes a token (under the row's lock, in its own session).
    with Session(session.get_bind()) as other:
        row = other.get(SchedulerState, "kie")
        assert row is not None
        row.creates = [*row.creates, now]
        other.commit()
    session.commit()  # whatever the look left in this session
    row = session.get(SchedulerState, "kie", populate_existing=True)
    assert row is not None
    assert row.creates == [stale, fresh, now]  # nothing pruned, nothing lost
