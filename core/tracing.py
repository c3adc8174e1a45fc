"""One trace per job (OpenTelemetry), configured by the standard `OTEL_*` variables.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) or `OTEL_TRACES_EXPORTER`
is set: then nothing is instrumented, and every helper here returns at its first line — the
cost of tracing off is one global read. On, the maintained instrumentations make the spans
(FastAPI requests, Celery publishes and runs, SQLAlchemy statements, httpx calls); this module
adds what ties them to a job:

- a job's trace context (`jobs.traceparent`) is its creation span, a child of the
  `POST /jobs` request (itself the child of a client's `traceparent`);
- every later step of the job — admission wait, upload, createTask, each check, the callback,
  archiving, each webhook attempt — is a span in that trace: a child of the step that sent its
  Celery message (the context rides in the message's headers), or, where the message came
  from elsewhere (a sweep, a retry, an unrelated request), a child of the stored context with a
  link to the span that really caused it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

_provider: TracerProvider | None = None  # set by setup(): tracing is on
_tracer = trace.get_tracer("soraq")


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the `OTEL_*` variables ask for traces."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    endpoint = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    return bool(exporter or endpoint)


def enabled() -> bool:
    return _provider is not None


def _exporter(environ: Mapping[str, str]) -> SpanExporter:
    kind = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER={kind!r}: soraq knows otlp, console and none")
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # endpoint, headers, timeout: from OTEL_EXPORTER_OTLP_*
    if protocol != "http/protobuf":
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: use http/protobuf or grpc")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HTTPSpanExporter,
    )

    return HTTPSpanExporter()


def setup(
    service: str, *, exporter: SpanExporter | None = None, environ: Mapping[str, str] = os.environ
) -> bool:
    """Turn tracing on in this process when the environment asks for it (or an exporter is
    given, as tests do). Call before engines and HTTP clients are made. True when on."""
    global _provider, _tracer
    if _provider is not None:
        return True
    if exporter is None and not wanted(environ):
        return False
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, when set, win over the default name.
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        # Batches leave on a background thread: no request or task waits on the collector.
        provider.add_span_processor(BatchSpanProcessor(_exporter(environ)))
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)  # for libraries that ask the global one
    _provider = provider
    _tracer = provider.get_tracer("soraq")
    HTTPXClientInstrumentor().instrument(
        tracer_provider=provider, request_hook=_hide_query, async_request_hook=_hide_query_async
    )
    CeleryInstrumentor().instrument(tracer_provider=provider)
    log.info("tracing on: spans go to %s", type(provider).__name__)
    return True


def teardown() -> None:
    """Tracing off again in this process (tests that turned it on)."""
    global _provider, _tracer
    if _provider is None:
        return
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().uninstrument()
    CeleryInstrumentor().uninstrument()
    _provider.shutdown()
    _provider, _tracer = None, trace.get_tracer("soraq")


def _safe_url(url: Any) -> str:
    # A webhook address or a signed download link can carry a secret in its query string.
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _hide_query(span: trace.Span, request: Any) -> None:
    if span.is_recording():
        safe = _safe_url(request.url)
        span.set_attribute("url.full", safe)
        span.set_attribute("http.url", safe)


async def _hide_query_async(span: trace.Span, request: Any) -> None:
    _hide_query(span, request)


def instrument_app(app: Any) -> None:
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        # Probes and scrapes every few seconds would bury the jobs' traces.
        excluded_urls="/healthz,/readyz,/metrics",
    )


def trace_engine(engine: Any) -> None:
    """SQLAlchemy statements as spans (a sync engine, or an async engine's `sync_engine`)."""
    if _provider is None:
        return
    # The instrumentor's own entry point instruments one engine per process; soraq has
    # two (the API's async one, the CLI's sync one), so each gets its listener directly.
    from opentelemetry.instrumentation.sqlalchemy import __version__
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import get_meter

    tracer = _provider.get_tracer("opentelemetry.instrumentation.sqlalchemy", __version__)
    usage = get_meter("soraq").create_up_down_counter("db.client.connections.usage")
    EngineTracer(tracer, engine, usage)


class TracedJob(Protocol):
    """What a job's spans read: a `models.job.Job`, or a row of `models.job_queries.job_traces`."""

    @property
    def id(self) -> str: ...
    @property
    def client_id(self) -> str | None: ...
    @property
    def model(self) -> str: ...
    @property
    def kie_task_id(self) -> str | None: ...
    @property
    def traceparent(self) -> str | None: ...


def _attributes(job_id: str, client: str | None, model: str, task: str | None) -> dict[str, str]:
    attributes = {"soraq.job_id": job_id, "soraq.model": model}
    if client:
        attributes["soraq.client"] = client
    if task:
        attributes["kie.task_id"] = task
    return attributes


def start_job(job_id: str, client: str | None, model: str) -> str | None:
    """The job's creation span (a child of the current request); its context, as a W3C
    `traceparent`, is stored with the job. None when tracing is off."""
    if _provider is None:
        return None
    with _tracer.start_as_current_span(
        "soraq.job.create", attributes=_attributes(job_id, client, model, None)
    ):
        carrier: dict[str, str] = {}
        inject(carrier)
    return carrier.get("traceparent")


def _stored(traceparent: str | None) -> otel_context.Context | None:
    if not traceparent:
        return None
    ctx = extract({"traceparent": traceparent})
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def _parent_and_links(traceparent: str | None) -> tuple[Any, list[trace.Link]]:
    """A step's parent: the current span when it is already in the job's trace (its Celery
    message carried the context), else the job's stored context, linked to the current span
    (the sweep or request that caused it)."""
    stored = _stored(traceparent)
    current = trace.get_current_span().get_span_context()
    if stored is None:
        return None, []
    job_trace = trace.get_current_span(stored).get_span_context().trace_id
    if current.is_valid and current.trace_id == job_trace:
        return None, []
    return stored, ([trace.Link(current)] if current.is_valid else [])


@contextmanager
def _job_span(
    name: str, job: TracedJob, start: datetime | None, extra: dict[str, Any]
) -> Iterator[trace.Span]:
    parent, links = _parent_and_links(job.traceparent)
    attributes = _attributes(job.id, job.client_id, job.model, job.kie_task_id)
    with _tracer.start_as_current_span(
        name,
        context=parent,
        links=links,
        attributes={**attributes, **extra},
        start_time=int(start.timestamp() * 1e9) if start is not None else None,
    ) as span:
        yield span


def job_span(
    name: str,
    job: TracedJob | None,
    *,
    start: datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> Any:
    """A span for one step of `job`, in the job's trace, with its id, client, model and Kie
    task. A no-op when tracing is off, or there is no job, or it has no stored context (made
    before tracing was on)."""
    if _provider is None or job is None or not job.traceparent:
        return nullcontext(None)
    return _job_span(name, job, start, extra or {})


def span(name: str, **attributes: Any) -> Any:
    """A plain span (a storage call, an upstream call) under whatever is current."""
    if _provider is None:
        return nullcontext(None)
    return _tracer.start_as_current_span(name, attributes=attributes)


def set_attribute(target: Any, key: str, value: Any) -> None:
    if target is not None and value is not None:
        target.set_attribute(key, value)
