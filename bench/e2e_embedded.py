"""N jobs end to end on the embedded default (SQLite + file broker) against an instant sandbox.

Prints wall time and per-job latency (created → finished, from the job rows). A figure, not a
test: nothing here passes or fails.

    python -m bench.e2e_embedded [--jobs 100] [--no-callbacks]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx

from bench.common import Row
from devstack.stack import local_stack


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--no-callbacks", action="store_true")
    args = parser.parse_args(argv)

    with (
        tempfile.TemporaryDirectory(prefix="soraq-bench-") as tmp,
        local_stack(
            Path(tmp),
            callbacks=not args.no_callbacks,
            SANDBOX_DURATION="0",
            SANDBOX_NULL_WINDOW="0",
            # Kie's real limit would make this a benchmark of 20 per 10 s; this one measures
            # soraq's own overhead, so the sandbox and admission allow a burst.
            KIE_CREATE_RATE="1000/1s",
        ) as stack,
        httpx.Client(
            base_url=stack.api_url,
            timeout=30,
            headers={"authorization": f"Bearer {stack.create_client('bench')[0]}"},
        ) as api,
    ):
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            ids = list(
                pool.map(
                    lambda i: api.post("/jobs", json={"prompt": f"bench job {i}"}).json()["id"],
                    range(args.jobs),
                )
            )
        submitted = time.monotonic() - started
        pending = set(ids)
        jobs = {}
        while pending and time.monotonic() - started < 600:
            for job_id in list(pending):
                job = api.get(f"/jobs/{job_id}").json()
                if job["status"] in ("succeeded", "failed"):
                    jobs[job_id] = job
                    pending.discard(job_id)
            time.sleep(0.2)
        wall = time.monotonic() - started

    latencies = sorted(
        (
            datetime.fromisoformat(j["finished_at"]) - datetime.fromisoformat(j["created_at"])
        ).total_seconds()
        for j in jobs.values()
    )
    succeeded = sum(j["status"] == "succeeded" for j in jobs.values())
    print(f"embedded default, {args.jobs} jobs, callbacks {'off' if args.no_callbacks else 'on'}")
    print(f"  POSTs accepted in      {submitted:6.2f} s ({args.jobs / submitted:.0f}/s, 8 threads)")
    print(f"  all terminal after     {wall:6.2f} s  (ok {succeeded}, unfinished {len(pending)})")
    if latencies:
        p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
        print(f"  per job created→done  p50 {statistics.median(latencies):.2f} s, p95 {p95:.2f} s")
    return [
        Row(
            "6",
            f"{args.jobs} jobs end to end through the embedded default, instant sandbox",
            "—",
            f"all done in **{wall:.1f} s** (ok {succeeded}, unfinished {len(pending)}); "
            f"POSTs at {args.jobs / submitted:.0f}/s",
        )
    ]


if __name__ == "__main__":
    main()
