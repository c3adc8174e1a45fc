"""What the client-facing features cost: a 1,000-item batch accepted (one request), and 500
requests held open by `Prefer: wait` on one job (what they cost the API while they wait, and
how soon they all answer once it ends).

    python -m bench.clients [--batches 5] [--waiters 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import datetime

import httpx

from bench.common import Row, median, percentile, production_stack


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children, from /proc (Linux)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _wait_all(base_url: str, key: str, job_id: str, waiters: int) -> list[tuple[int, float]]:
    # Fifty connections per client: httpx's pool slows down with hundreds in one (a cost of
    # the load generator, not of soraq).
    headers = {"authorization": f"Bearer {key}", "prefer": "wait=60"}
    clients = [
        httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=90,
            limits=httpx.Limits(max_connections=60, max_keepalive_connections=60),
        )
        for _ in range(max(1, waiters // 50))
    ]

    async def one(api: httpx.AsyncClient) -> tuple[int, float]:
        response = await api.get(f"/jobs/{job_id}")
        return response.status_code, time.time()

    try:
        return await asyncio.gather(*(one(clients[i % len(clients)]) for i in range(waiters)))
    finally:
        for api in clients:
            await api.aclose()


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--waiters", type=int, default=500)
    args = parser.parse_args(argv)
    # One client holds every waiter here: its cap on held requests is lifted for the figure.
    overrides = {"CLIENT_CREATE_RATE": "1000000/1m", "CLIENT_MAX_HELD": str(args.waiters)}
    with production_stack(**overrides) as (stack, label):
        key = stack.create_client("bench", max_active_jobs=1_000_000)[0]
        api = httpx.Client(
            base_url=stack.api_url, timeout=60, headers={"authorization": f"Bearer {key}"}
        )
        accepted = []
        for run in range(args.batches):
            body = {"jobs": [{"prompt": f"bench batch {run} item {i}"} for i in range(1000)]}
            started = time.monotonic()
            response = api.post("/batches", json=body)
            accepted.append(time.monotonic() - started)
            assert response.status_code == 202, response.text
            api.post(f"/batches/{response.json()['id']}/cancel")  # keep the worker free
        print(
            f"{label}: 1,000-item batch accepted in p50 {median(accepted):.2f} s, "
            f"max {max(accepted):.2f} s over {args.batches} runs"
        )

        api_pid = stack.processes["api"].pid
        job = api.post("/jobs", json={"prompt": "bench waited on [kie:slow=20]"}).json()
        rss_before, cpu_before = _rss_mb(api_pid), _cpu_seconds(api_pid)
        started = time.monotonic()
        answers = asyncio.run(_wait_all(stack.api_url, key, job["id"], args.waiters))
        held = time.monotonic() - started
        cpu = _cpu_seconds(api_pid) - cpu_before
        rss_during = _rss_mb(api_pid)
        final = api.get(f"/jobs/{job['id']}", headers={"prefer": "wait=60"})
        finished = final.json()["finished_at"]
        if finished is None:
            raise SystemExit(f"the job has not finished: {final.status_code} {final.text}")
        ended = datetime.fromisoformat(finished).timestamp()
        lags = [at - ended for status, at in answers if status == 200]
        print(
            f"{label}: {args.waiters} waiters held {held:.1f} s; "
            f"{sum(s == 200 for s, _ in answers)} answered 200; API CPU {cpu:.2f} s in all, "
            f"RSS {rss_before:.0f} → {rss_during:.0f} MB; job end → answer "
            f"p50 {median(lags):.2f} s, p95 {percentile(lags, 0.95):.2f} s"
        )
    return [
        Row(
            "9",
            f"1,000-item batch accepted ({label})",
            "< 1 s",
            f"p50 **{median(accepted):.2f} s**, max {max(accepted):.2f} s",
            "met" if max(accepted) < 1 else "missed",
        ),
        Row(
            "10",
            f"{args.waiters} `Prefer: wait` requests on one job ({label})",
            "no more than idle connections",
            f"API CPU {cpu:.2f} s over {held:.0f} s, RSS +{rss_during - rss_before:.0f} MB; "
            f"all answered p95 {percentile(lags, 0.95):.2f} s after the job ended",
        ),
    ]


if __name__ == "__main__":
    main()
