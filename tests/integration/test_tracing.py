"""One trace per job: a stack with tracing on (the standard OTEL_* variables) sends its spans
over OTLP/HTTP to a real HTTP receiver; one job — an uploaded image, Kie's callback, an
archived result, a webhook — yields one trace, under the client's own `traceparent`, holding
every step, from every process that took one."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator

import pytest

from devstack.otlp import ReceivedSpan, received_spans
from devstack.receiver import Receiver, webhook_receiver
from tests.images import PNG
from tests.integration.conftest import EMBEDDED, PRODUCTION, Services, Stack, running_stack

# Every step the issue names, by its span: creation, the admission wait, the upload, the
# createTask, a check, the callback, archiving (with its storage write) and the delivery.
STEPS = {
    "soraq.job.create",
    "soraq.job.admission_wait",
    "soraq.job.dispatch",
    "soraq.job.submit",
    "soraq.job.callback",
    "soraq.job.check",
    "soraq.job.archive",
    "storage.put",
    "soraq.webhook.deliver",
}


@pytest.fixture(scope="module")
def collector() -> Iterator[Receiver]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module", params=[EMBEDDED, PRODUCTION])
def traced(
    request: pytest.FixtureRequest,
    services: Services | None,
    tmp_path_factory: pytest.TempPathFactory,
    collector: Receiver,
) -> Iterator[Stack]:
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # spans leave within a fifth of a second
    }
    with running_stack(request.param, services, tmp_path_factory.mktemp("traced"), **otel) as s:
        yield s


def _trace(collector: Receiver, trace_id: str, client_span: str) -> list[ReceivedSpan]:
    """The trace's spans once every step is in and every span's parent has arrived too (a
    parent ends, and is sent, a moment after its last child)."""
    deadline = time.monotonic() + 20
    spans: list[ReceivedSpan] = []
    while time.monotonic() < deadline:
        spans = [s for s in received_spans(collector) if s.trace_id == trace_id]
        known = {s.span_id for s in spans} | {client_span}
        if STEPS <= {s.name for s in spans} and all(s.parent_id in known for s in spans):
            break
        time.sleep(0.2)
    return spans


def test_one_job_is_one_trace_with_every_step(traced: Stack, collector: Receiver) -> None:
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    prompt = f"A traced lighthouse {uuid.uuid4().hex[:8]}"
    with webhook_receiver() as hooks:
        response = traced.api.post(
            "/jobs",
            data={"prompt": prompt, "webhook_url": hooks.url + "/done"},
            files={"image": ("light.png", PNG, "image/png")},
            headers={"traceparent": f"00-{trace_id}-{client_span}-01"},
        )
        assert response.status_code == 202, response.text
        job = traced.wait(response.json()["id"])
        assert job["status"] == "succeeded", job
        deadline = time.monotonic() + 15
        while not hooks.received.get("/done") and time.monotonic() < deadline:
            time.sleep(0.1)
        [delivery] = hooks.received["/done"]

    spans = _trace(collector, trace_id, client_span)
    names = {s.name for s in spans}
    assert names >= STEPS, f"missing {STEPS - names}; got {sorted(names)}"

    # The client's span is the parent of soraq's first: the request's server span.
    by_id = {s.span_id: s for s in spans}
    roots = [s for s in spans if s.parent_id not in by_id]
    assert {s.parent_id for s in roots} == {client_span}, [(s.name, s.parent_id) for s in roots]
    # Every process that took a step is in the one trace: the API, the job worker (which
    # also runs the dispatcher), the archive worker and the webhook worker.
    assert {s.service for s in spans} == {"soraq-api", "soraq-worker"}
    # The job's spans say which job, client, model and Kie task they are about.
    job_spans = [s for s in spans if s.name.startswith("soraq.")]
    assert {s.attributes.get("soraq.job_id") for s in job_spans} == {job["id"]}
    assert all(s.attributes.get("soraq.model") == job["model"] for s in job_spans), [
        (s.name, s.attributes) for s in job_spans
    ]
    assert all(s.attributes.get("soraq.client") for s in job_spans)
    [check] = [s for s in spans if s.name == "soraq.job.check"][:1]
    assert check.attributes.get("kie.task_id")
    # The maintained instrumentations made the rest: the HTTP request, Celery's publish and
    # run, the database statements and the HTTP calls to Kie and imgbb.
    assert any(s.name == "POST /jobs" for s in spans)
    assert any(s.name.startswith("run/soraq.") for s in spans)
    assert any(s.name.startswith("apply_async/soraq.") for s in spans)
    assert any("db.system" in s.attributes or "db.system.name" in s.attributes for s in spans)
    http_calls = [str(s.attributes.get("url.full", "")) for s in spans if s.name == "POST"]
    assert any(url.endswith("/createTask") for url in http_calls), [
        (s.name, s.attributes) for s in spans if "url.full" in s.attributes
    ]
    # No query string (a signed link, a token in a webhook address) reaches a span.
    assert not [s for s in spans if "?" in str(s.attributes.get("url.full", ""))]

    # The webhook carried the job's trace to the receiver (W3C traceparent).
    assert delivery.headers["traceparent"].split("-")[1] == trace_id
    # Admission wait starts when the job was made and ends when it was let go.
    [wait] = [s for s in spans if s.name == "soraq.job.admission_wait"]
    [create] = [s for s in spans if s.name == "soraq.job.create"]
    assert wait.start_ns <= create.end_ns
    assert wait.end_ns > create.start_ns


@pytest.mark.parametrize(
    "headers",
    [
        {},
        # What a hostile or broken client may send: neither is believed nor refused.
        {"traceparent": "00-" + "z" * 4000 + "-01", "tracestate": "k=" + "v" * 4000},
        {"traceparent": "00-" + "0" * 32 + "-" + "0" * 16 + "-01"},  # the invalid all-zero ids
    ],
    ids=["none", "garbage", "zero-ids"],
)
def test_a_job_without_a_usable_traceparent_still_has_its_own_trace(
    traced: Stack, collector: Receiver, headers: dict[str, str]
) -> None:
    prompt = f"Untraced caller {uuid.uuid4().hex[:8]}"
    response = traced.api.post("/jobs", json={"prompt": prompt}, headers=headers)
    assert response.status_code == 202, response.text
    job = traced.wait(response.json()["id"])
    assert job["status"] == "succeeded", job
    deadline = time.monotonic() + 15
    found: list[ReceivedSpan] = []
    while time.monotonic() < deadline:
        found = [
            s for s in received_spans(collector) if s.attributes.get("soraq.job_id") == job["id"]
        ]
        if {"soraq.job.create", "soraq.job.archive"} <= {s.name for s in found}:
            break
        time.sleep(0.2)
    assert len({s.trace_id for s in found}) == 1, {s.name: s.trace_id for s in found}
    assert found[0].trace_id != "0" * 32
    assert {"soraq.job.create", "soraq.job.submit", "soraq.job.archive"} <= {s.name for s in found}
