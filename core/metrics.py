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

from prometheus_client import Counter, Histogram

KIE_CALLS = Counter(
    "soraq_kie_calls_total", "Calls to Kie by endpoint and result code", ["endpoint", "code"]
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
