"""Benchmark 5b — worker memory: the worker's RSS with 100 and with 10,000 jobs in flight at
Kie. Waiting jobs are rows with a `next_check_at`, not tasks held in worker RAM, so the figure
should not grow with the number of jobs.

Jobs are written as rows (state `generating`, due over the first minute) beside tasks seeded
in the sandbox, so every check is a real recordInfo. The worker runs with the default
KIE_CHECK_RATE and a check schedule short enough that 100 jobs keep it as busy as 10,000
do (so the runs differ only in the number of jobs); RSS is summed over the worker's process
group, sampled every 2 s.

    python -m bench.worker_memory [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert

from bench.common import Row, median, production_stack, verdict
from models.base import utcnow
from models.db import make_engine
from models.job import Job, JobStatus

SIZES = (100, 10_000)
PAGE = os.sysconf("SC_PAGE_SIZE")


def group_rss(pgid: int) -> int:
    """Bytes resident in every process of one process group (the worker and any children)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[2]) == pgid:  # fields: state ppid pgrp … rss is the 22nd after ")"
            total += int(fields[21]) * PAGE
    return total


def seed(database_url: str, sandbox_url: str, headers: dict[str, str], count: int) -> None:
    """`count` jobs at Kie, due for a check spread over the next minute."""
    now = utcnow()
    ids = [f"task_rss_{i}" for i in range(count)]
    with httpx.Client(base_url=sandbox_url, timeout=60, headers=headers) as sandbox:
        sandbox.post("/_sandbox/tasks", json={"ids": ids, "duration": 3600}).raise_for_status()
    rows = [
        {
            "status": JobStatus.GENERATING,
            "model": "veo3.1-fast/text-to-video",
            "input": {"prompt": "memory"},
            "kie_task_id": task_id,
            "started_at": now,
            "submitted_at": now,
            "deadline_at": now + timedelta(hours=2),
            "next_check_at": now + timedelta(seconds=60 * i / count),
        }
        for i, task_id in enumerate(ids)
    ]
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(insert(Job), rows)
    engine.dispose()


def run(count: int, seconds: float) -> dict[str, object]:
    overrides = {
        "LOG_LEVEL": "WARNING",
        "KIE_MAX_IN_FLIGHT": str(max(SIZES) * 2),
        # A check every few seconds per job: 100 jobs ask for more checks than KIE_CHECK_RATE
        # allows, as 10,000 do, so both runs do the same work and differ only in job count.
        "CHECK_INITIAL_DELAY": "1",
        "CHECK_BACKOFF": "1",
        "CHECK_MAX_INTERVAL": "5",
    }
    with production_stack(callbacks=False, **overrides) as (stack, label):
        seed(stack.env["DATABASE_URL"], stack.sandbox_url, stack.sandbox_headers, count)
        worker = stack.processes["worker"].pid
        samples: list[int] = []
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            samples.append(group_rss(worker))
            time.sleep(2)
        with httpx.Client(
            base_url=stack.sandbox_url, timeout=60, headers=stack.sandbox_headers
        ) as sandbox:
            calls = sandbox.get("/_sandbox/calls").json()["calls"]
    settled = samples[len(samples) // 2 :]  # the second half: past start-up
    return {
        "backend": label,
        "jobs": count,
        "rss_mib": median(settled) / 2**20,
        "rss_max_mib": max(samples) / 2**20,
        "checks": sum(c["endpoint"] == "recordInfo" for c in calls),
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args(argv)
    results = [run(count, args.seconds) for count in SIZES]
    for result in results:
        print(
            f"worker RSS ({result['backend']}), {result['jobs']:>6,} jobs in flight: "
            f"median {result['rss_mib']:.1f} MiB, max {result['rss_max_mib']:.1f} MiB "
            f"({result['checks']} recordInfo calls in {result['seconds']:.0f} s)"
        )
    low, high = (float(r["rss_mib"]) for r in results)  # type: ignore[arg-type]
    change = high / low - 1
    print(f"worker RSS 10,000 vs 100 in flight: {change:+.1%}")
    return [
        Row(
            "5b",
            f"worker RSS, 100 vs 10,000 jobs in flight ({results[0]['backend']})",
            "flat ±10 %",
            f"{low:.0f} MiB vs {high:.0f} MiB: **{change:+.1%}**",
            verdict(abs(change) <= 0.10),
        )
    ]


if __name__ == "__main__":
    main()
