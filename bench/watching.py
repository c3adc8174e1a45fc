"""Benchmarks 3 and 4 — watching Kie: recordInfo calls per job, and the time from the
sandbox finishing a task to the client's webhook receiver getting the event, with Kie's
callbacks on and off. Default check schedule; a 90 s generation, as the goal is stated.

    python -m bench.watching [--jobs 20] [--duration 90]
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx

from bench.common import Row, median, percentile, production_stack, verdict
from core.config import Settings
from devstack.receiver import webhook_receiver


def run(callbacks: bool, jobs: int, duration: float, size: str = "") -> dict[str, object]:
    overrides = {
        "SANDBOX_DURATION": str(duration),
        "LOG_LEVEL": "WARNING",
        "WEBHOOK_ALLOW_HTTP": "true",
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        "UPSTREAM_ALLOWED_NETWORKS": "127.0.0.1/32",
        # The defaults of the check schedule, whatever the fast test clocks say.
        "CHECK_INITIAL_DELAY": "5",
        "CHECK_BACKOFF": "1.6",
        "CHECK_MAX_INTERVAL": "30",
        "CALLBACK_CHECK_INTERVAL": "60",
        "SWEEP_INTERVAL": str(Settings.model_fields["sweep_interval"].default),
        "ADMIN_TOKEN": ADMIN,  # to read each job's history for the hop table
    }
    tag = uuid.uuid4().hex[:6]
    with (
        production_stack(callbacks=callbacks, **overrides) as (stack, label),
        webhook_receiver() as receiver,
    ):
        key, _ = stack.create_client("bench")
        with httpx.Client(
            base_url=stack.api_url, timeout=30, headers={"authorization": f"Bearer {key}"}
        ) as api:
            ids = [
                api.post(
                    "/jobs",
                    json={
                        "prompt": f"watch {tag} {i}" + (f" [kie:size={size}]" if size else ""),
                        "webhook_url": receiver.script(f"/{i}"),
                    },
                ).json()["id"]
                for i in range(jobs)
            ]
            deadline = duration + 120
            started = time.monotonic()
            while sum(len(v) for v in receiver.received.values()) < jobs:
                if time.monotonic() - started > deadline:
                    states = Counter(api.get(f"/jobs/{i}").json()["status"] for i in ids)
                    late = [i for i in ids if api.get(f"/jobs/{i}").json()["status"] != "succeeded"]
                    for event in api.get(
                        f"/admin/jobs/{late[0]}", headers={"authorization": f"Bearer {ADMIN}"}
                    ).json()["events"]:
                        print("  stuck job:", event)  # what the history says, for the record
                    print(stack.log_tail(60))
                    raise AssertionError(f"webhooks did not all arrive; jobs: {dict(states)}")
                time.sleep(0.5)
            done = [api.get(f"/jobs/{i}").json() for i in ids]
            histories = [
                api.get(f"/admin/jobs/{i}", headers={"authorization": f"Bearer {ADMIN}"}).json()[
                    "events"
                ]
                for i in ids
            ]
        calls = httpx.get(
            f"{stack.sandbox_url}/_sandbox/calls", headers=stack.sandbox_headers
        ).json()["calls"]
    created = {
        c["task_id"]: c["at"] for c in calls if c["endpoint"] == "createTask" and c["code"] == 200
    }
    checks = Counter(c["task_id"] for c in calls if c["endpoint"] == "recordInfo")
    per_job = [checks[job["kie_task_id"]] for job in done]
    latency = []
    hop_times: dict[str, list[float]] = {name: [] for name in HOPS}
    callbacks_sent = {c["task_id"]: c["at"] for c in calls if c["endpoint"] == "callback"}
    for i, job in enumerate(done):
        arrived = receiver.received[f"/{i}"][0].at
        kie_done = created[job["kie_task_id"]] + duration
        latency.append(arrived - kie_done)
        for name, seconds in hops(
            kie_done, callbacks_sent.get(job["kie_task_id"]), histories[i], arrived
        ).items():
            hop_times[name].append(seconds)
    return {
        "backend": label,
        "callbacks": callbacks,
        "jobs": jobs,
        "duration": duration,
        "succeeded": sum(j["status"] == "succeeded" for j in done),
        "checks_mean": sum(per_job) / len(per_job),
        "checks_max": max(per_job),
        "latency_p50": median(latency),
        "latency_p95": percentile(latency, 0.95),
        "hops": {
            name: (median(values), percentile(values, 0.95))
            for name, values in hop_times.items()
            if values
        },
    }


ADMIN = "bench-admin-token-0123456789abcdef0123"
# The notification path, hop by hop, from each job's history (job_events) and the sandbox's
# and the receiver's clocks (one machine, one clock).
HOPS = (
    "Kie done → callback sent",
    "callback → recordInfo answered",
    "recordInfo → archived, succeeded",
    "succeeded → webhook received",
)


def hops(
    kie_done: float, callback: float | None, events: list[dict[str, Any]], arrived: float
) -> dict[str, float]:
    def at(event: dict[str, Any]) -> float:
        return datetime.fromisoformat(event["at"]).timestamp()

    start = callback if callback is not None else kie_done
    reads = [
        at(e)
        for e in events
        if e["kind"] == "kie_call"
        and (e["detail"] or {}).get("endpoint") == "recordInfo"
        and at(e) >= start - 0.05
    ]
    succeeded = next((at(e) for e in events if e["to_status"] == "succeeded"), None)
    if not reads or succeeded is None:
        return {}
    found: dict[str, float] = {}
    if callback is not None:
        found[HOPS[0]] = callback - kie_done
        found[HOPS[1]] = reads[0] - callback
    found[HOPS[2]] = succeeded - reads[0]
    found[HOPS[3]] = arrived - succeeded
    return found


def print_hops(r: dict[str, Any]) -> None:
    for name, (p50, p95) in r["hops"].items():
        print(f"  hop {name:<36} p50 {p50:6.3f} s  p95 {p95:6.3f} s")


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--duration", type=float, default=90)
    parser.add_argument(
        "--size",
        default="",
        help="result file size, e.g. 20MB: the webhook then waits for the archived copy",
    )
    args = parser.parse_args(argv)
    if args.size:
        r = run(True, args.jobs, args.duration, args.size)
        print(
            f"watching ({r['backend']}), {r['jobs']} jobs of {r['duration']:g} s with "
            f"{args.size} results archived, callbacks on: webhook after Kie done p50 "
            f"{r['latency_p50']:.2f} s, p95 {r['latency_p95']:.2f} s; succeeded {r['succeeded']}"
        )
        print_hops(r)
        return [
            Row(
                "4c",
                f"Kie task done → webhook, {args.size} videos archived first, callbacks on",
                "p95 ≤ 2 s",
                f"p50 {r['latency_p50']:.2f} s, p95 **{r['latency_p95']:.2f} s**",
                verdict(float(r["latency_p95"]) <= 2),  # type: ignore[arg-type]
            )
        ]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda cb: run(cb, args.jobs, args.duration), (True, False)))
    for r in results:
        print(
            f"watching ({r['backend']}), {r['jobs']} jobs of {r['duration']:g} s, callbacks "
            f"{'on' if r['callbacks'] else 'off'}: recordInfo per job {r['checks_mean']:.1f} "
            f"(max {r['checks_max']}); webhook after Kie done p50 {r['latency_p50']:.2f} s, "
            f"p95 {r['latency_p95']:.2f} s; succeeded {r['succeeded']}"
        )
        print_hops(r)
    on, off = results
    jobs = f"{args.jobs} jobs of {args.duration:g} s"
    return [
        Row(
            "3a",
            f"recordInfo calls per job, {jobs}, callbacks on",
            "≤ 2",
            f"**{on['checks_mean']:.1f}** (max {on['checks_max']})",
            verdict(float(on["checks_mean"]) <= 2),  # type: ignore[arg-type]
        ),
        Row(
            "3b",
            "… callbacks off (default schedule)",
            "≤ 8",
            f"**{off['checks_mean']:.1f}** (max {off['checks_max']})",
            verdict(float(off["checks_mean"]) <= 8),  # type: ignore[arg-type]
        ),
        Row(
            "4a",
            "Kie task done → client's webhook received, callbacks on",
            "p95 ≤ 1 s",
            f"p50 {on['latency_p50']:.2f} s, p95 **{on['latency_p95']:.2f} s**",
            verdict(float(on["latency_p95"]) <= 1),  # type: ignore[arg-type]
        ),
        Row(
            "4b",
            "… callbacks off",
            "—",
            f"p50 {off['latency_p50']:.2f} s, p95 {off['latency_p95']:.2f} s",
        ),
    ]


if __name__ == "__main__":
    main()
