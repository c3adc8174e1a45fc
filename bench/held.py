"""Held connections cannot starve the API (issue 24, item 4): the second review's attack —
three keys opening 700 `GET /jobs/events` streams each — against CLIENT_MAX_HELD and
MAX_HELD, with /healthz and POST /jobs timed meanwhile, and the API's RSS.

    python -m bench.held [--streams 700] [--keys 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from statistics import median

import httpx

from bench.common import Row, production_stack

NAME = "held connections: streams per key capped, the API still answers"


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _probe(probe: httpx.AsyncClient, rounds: int) -> tuple[list[float], list[int]]:
    """Another client's /healthz and POST /jobs, timed."""
    latencies: list[float] = []
    statuses: list[int] = []
    for i in range(rounds):
        started = time.monotonic()
        if i % 2:
            answer = await probe.post("/jobs", json={"prompt": f"meanwhile {i}"})
        else:
            answer = await probe.get("/healthz")
        latencies.append(time.monotonic() - started)
        statuses.append(answer.status_code)
        await asyncio.sleep(0.05)
    return latencies, statuses


async def _attack(
    base_url: str, keys: list[str], streams: int, probe_key: str
) -> tuple[Counter[int], tuple[list[float], list[int]], tuple[list[float], list[int]]]:
    """Every key opens `streams` event streams at once and keeps the ones it gets. Another
    client is timed during the burst, then while the streams are held. Returns (stream
    answers, (latencies, statuses) during the burst, the same while held)."""
    clients = [
        httpx.AsyncClient(
            base_url=base_url,
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
            limits=httpx.Limits(max_connections=streams + 10),
        )
        for key in keys
    ]
    opened: list[httpx.Response] = []
    answers: Counter[int] = Counter()

    async def open_one(client: httpx.AsyncClient) -> None:
        try:
            response = await client.send(client.build_request("GET", "/jobs/events"), stream=True)
        except httpx.HTTPError:
            answers[0] += 1
            return
        answers[response.status_code] += 1
        if response.status_code == 200:
            opened.append(response)
        else:
            await response.aclose()

    async with httpx.AsyncClient(
        base_url=base_url, headers={"authorization": f"Bearer {probe_key}"}, timeout=30
    ) as probe:
        attack = asyncio.gather(*(open_one(c) for c in clients for _ in range(streams)))
        during = await _probe(probe, 20)
        await attack
        held = await _probe(probe, 40)
    for response in opened:
        await response.aclose()
    for client in clients:
        await client.aclose()
    return answers, during, held


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=700)
    parser.add_argument("--keys", type=int, default=3)
    args = parser.parse_args(argv)
    with production_stack() as (stack, label):
        keys = [stack.create_client(f"held-{i}")[0] for i in range(args.keys)]
        probe_key = stack.create_client("held-probe")[0]
        api_pid = stack.processes["api"].pid
        rss_before = _rss_mb(api_pid)
        answers, during, held = asyncio.run(_attack(stack.api_url, keys, args.streams, probe_key))
        rss_during = _rss_mb(api_pid)
    accepted, refused = answers.get(200, 0), answers.get(429, 0)
    others = {code: n for code, n in answers.items() if code not in (200, 429)}

    def said(probes: tuple[list[float], list[int]]) -> str:
        latencies, statuses = probes
        return (
            f"{dict(sorted(Counter(statuses).items()))} in p50 {median(latencies) * 1000:.0f} "
            f"ms, max {max(latencies) * 1000:.0f} ms"
        )

    print(
        f"{label}: {args.keys} keys × {args.streams} streams at once: {accepted} opened, "
        f"{refused} got 429, others {others or 'none'} (the burst past uvicorn's 2,000 "
        f"connections); another client during the burst: {said(during)}; while the "
        f"{accepted} streams are held: {said(held)}; API RSS {rss_before:.0f} → "
        f"{rss_during:.0f} MB"
    )
    ok_held = set(held[1]) <= {200, 202}
    return [
        Row(
            "15",
            f"{args.keys} keys × {args.streams} event streams ({label})",
            "API keeps answering",
            f"{accepted} opened, {refused} × 429, {sum(others.values())} × 503 in the burst; "
            f"another client while held: {said(held)}; RSS {rss_before:.0f} → "
            f"{rss_during:.0f} MB",
            "met" if ok_held else "missed",
        )
    ]


if __name__ == "__main__":
    main()
