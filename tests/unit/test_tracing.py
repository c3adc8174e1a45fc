"""core.tracing with the SDK's in-memory exporter: a job's stored context, its steps as
children or links, the client's traceparent, secrets kept out of spans, and nothing at all
when tracing is off."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core import tracing
from devstack.receiver import webhook_receiver


@dataclass(frozen=True)
class Traced:
    """A job as its spans see it (core.tracing.TracedJob)."""

    traceparent: str | None
    id: str = "job_1"
    client_id: str | None = "cl_1"
    model: str = "kling-2.6/image-to-video"
    kie_task_id: str | None = "t1"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.setup("soraq-test", exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.teardown()


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, False),
    ],
)
def test_the_standard_variables_turn_it_on(environ: dict[str, str], on: bool) -> None:
    assert tracing.wanted(environ) is on


def test_off_means_no_context_stored_and_no_spans() -> None:
    assert not tracing.enabled()
    assert tracing.start_job("job_1", "cl_1", "veo3.1-fast/text-to-video") is None
    job = Traced("00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    with tracing.job_span("soraq.job.check", job) as span:
        assert span is None
    with tracing.span("storage.put") as span:
        assert span is None


def test_a_job_trace_is_the_clients_and_later_steps_join_it(spans: InMemorySpanExporter) -> None:
    client_trace, client_span = "a" * 32, "b" * 16
    incoming = extract({"traceparent": f"00-{client_trace}-{client_span}-01"})
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("POST /jobs", context=incoming):
        stored = tracing.start_job("job_1", "cl_1", "kling-2.6/image-to-video")
    assert stored is not None
    assert stored.split("-")[1] == client_trace

    # A sweep in its own trace hands the job out: the step joins the job's trace, linked.
    with tracer.start_as_current_span("run/soraq.dispatch") as sweep:
        with tracing.job_span("soraq.job.dispatch", Traced(stored)):
            # …and the message it sends there carries the job's context: the worker's step is
            # a plain child, no link.
            with tracing.job_span("soraq.job.submit", Traced(stored)):
                pass
    finished = {s.name: s for s in spans.get_finished_spans()}
    create, dispatch, submit = (
        finished["soraq.job.create"],
        finished["soraq.job.dispatch"],
        finished["soraq.job.submit"],
    )
    assert create.parent is not None
    assert create.context.trace_id == int(client_trace, 16)
    assert dispatch.context.trace_id == int(client_trace, 16)
    assert dispatch.parent is not None
    assert dispatch.parent.span_id == create.context.span_id
    assert [link.context.span_id for link in dispatch.links] == [sweep.get_span_context().span_id]
    assert submit.parent is not None
    assert submit.parent.span_id == dispatch.context.span_id
    assert not submit.links
    assert submit.attributes is not None
    assert submit.attributes["soraq.job_id"] == "job_1"
    assert submit.attributes["kie.task_id"] == "t1"


def test_a_stored_context_that_is_garbage_is_ignored(spans: InMemorySpanExporter) -> None:
    for untraced in (None, Traced(None)):  # no job, or one made while tracing was off
        with tracing.job_span("soraq.job.check", untraced) as span:
            assert span is None
    with tracing.job_span("soraq.job.check", Traced("not-a-traceparent")) as span:
        assert span is not None  # a span of its own, in a new trace: no crash, no parent
    [finished] = spans.get_finished_spans()
    assert finished.parent is None


def test_outbound_calls_carry_the_trace_but_no_query_string(spans: InMemorySpanExporter) -> None:
    with webhook_receiver() as receiver, httpx.Client() as client:
        stored = tracing.start_job("job_2", "cl_1", "veo3.1-fast/text-to-video")
        with tracing.job_span("soraq.webhook.deliver", Traced(stored, id="job_2")):
            client.post(receiver.url + "/hook?token=s3cret", content=b"{}")
        [received] = receiver.received["/hook?token=s3cret"]
    assert stored is not None
    assert received.headers["traceparent"].split("-")[1] == stored.split("-")[1]
    [post] = [s for s in spans.get_finished_spans() if s.name == "POST"]
    assert post.attributes is not None
    assert "s3cret" not in str(dict(post.attributes))
    assert post.attributes["url.full"] == receiver.url + "/hook"


def test_the_exporter_follows_the_protocol_variables() -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GRPC
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTP
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert isinstance(tracing._exporter(endpoint), HTTP)
    grpc = {**endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    assert isinstance(tracing._exporter(grpc), GRPC)
    assert isinstance(tracing._exporter({"OTEL_TRACES_EXPORTER": "console"}), ConsoleSpanExporter)
    with pytest.raises(ValueError, match="http/json"):
        tracing._exporter({**endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
