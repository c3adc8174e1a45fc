"""Prometheus metrics.

Two kinds, so that any number of API and worker processes report one truth:
- what happens inside processes (Kie call latency and errors, webhook outcomes, sweep time) is
  counted with prometheus-client's multiprocess mode: every process writes to files in
  PROMETHEUS_MULTIPROC_DIR (one folder shared by the processes of a host), and `/metrics`
  sums them;
- what the jobs are (created and finished by status and model, queue depth, the oldest overdue
  check, webhook deliveries) is read from the database at scrape time: the rows are the truth,
  and no process restart resets them.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, start_http_server

KIE_CALLS = Counter(
    "soraq_kie_calls_total",
    "Calls to Kie by endpoint, result code, API family and upstream account (a test-mode "
    "job's: sandbox)",
    ["endpoint", "code", "family", "account"],
)
KIE_LATENCY = Histogram(
    "soraq_kie_call_seconds",
    "Kie call latency",
    ["endpoint"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ORPHAN_TASKS = Counter(
    "soraq_orphan_tasks_total",
    "Kie callbacks naming a task for a job that had already ended (the job did not change)",
)
WEBHOOK_ATTEMPTS = Counter(
    "soraq_webhook_attempts_total", "Webhook delivery attempts by outcome", ["outcome"]
)
ADMISSION_WAIT = Histogram(
    "soraq_admission_wait_seconds",
    "From a live job's creation to Kie accepting its task (queue and admission wait)",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)
KIE_RESULTS = Counter(
    "soraq_kie_results_total",
    "Jobs whose end at Kie soraq learnt, by how (after a callback, or by polling) and state",
    ["via", "state"],
)
WEBHOOK_LATENCY = Histogram(
    "soraq_webhook_latency_seconds",
    "From an event to the receiver accepting its delivery (retries included)",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200),
)
ARCHIVED_BYTES = Counter("soraq_archived_bytes_total", "Bytes of result files archived")
ARCHIVE_SECONDS = Histogram(
    "soraq_archive_seconds",
    "Time to archive one result file (download, probe, poster, store)",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
SWEEP_SECONDS = Histogram(
    "soraq_sweep_seconds",
    "Time to claim due work in one sweep",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)


def prepare_multiprocess_dir(folder: Path) -> None:
    """Start a deployment's metrics afresh (call before the processes start)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder.resolve())


def serve_worker_metrics(port: int) -> None:
    """A worker's own /metrics on `port` (a thread), summing this host's processes' files:
    where workers do not share the API's PROMETHEUS_MULTIPROC_DIR (a Kubernetes pod each),
    Prometheus scrapes them here. It carries Kie call, webhook and archive counters — no
    client names, no balance (those are the API's, behind METRICS_TOKEN)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr="0.0.0.0", registry=registry)
