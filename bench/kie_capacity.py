"""Benchmark 2 — burst admission: 3 clients submit 2,000 / 500 / 50 jobs at once against a
sandbox that enforces Kie's limits (20 new tasks per 10 s, 100 at once). Counted from the
sandbox's own call log.

At Kie's real window the whole burst takes 21 minutes, so the run is watched for a span
(4 minutes by default) that covers every goal: the 50-job client finishes within the first
minute and a half, and work stays queued throughout. Two short runs follow at a window scaled
to 1 s: one limited to 20 per 1 s, and one unlimited, which shows how many creates per second
this machine's whole pipeline (API, worker, database, sandbox on two shared cores) can do.

    python -m bench.kie_capacity [--span 240] [--skip-scaled]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from bench.common import Row, production_stack, verdict
from core.config import Settings

BURST = {"big": 2000, "mid": 500, "small": 50}


@dataclass
class Burst:
    backend: str
    sizes: dict[str, int]
    limit: str
    created: int
    refused: int
    seconds: float
    rate_used: float | None  # share of the limit used while work was queued
    per_second: float
    spread: float  # largest deviation from an equal share while all three had work
    shares: dict[str, int]
    small_first: bool  # the small client's last start came before the big backlog's end


def run(
    sizes: dict[str, int],
    rate: int | None,
    window: float,
    span: float | None = None,
    **settings: str,
) -> Burst:
    """Submit the burst; watch until every job is created or `span` seconds have passed."""
    limit = f"{rate}/{window:g}s" if rate else "1000/1s"
    overrides = {
        "KIE_CREATE_RATE": limit,
        "SANDBOX_CREATE_RATE": limit if rate else "",
        "KIE_MAX_IN_FLIGHT": "100",
        "SANDBOX_MAX_CONCURRENT": "100",
        "SANDBOX_DURATION": "1",
        "LOG_LEVEL": "WARNING",
        **settings,
    }
    total = sum(sizes.values())
    with production_stack(**overrides) as (stack, label):
        keys = {
            name: stack.create_client(f"bench-{name}", max_active_jobs=10_000)[0] for name in sizes
        }

        def submit(name: str) -> int:
            with (
                httpx.Client(
                    base_url=stack.api_url,
                    timeout=60,
                    headers={"authorization": f"Bearer {keys[name]}"},
                ) as api,
                ThreadPoolExecutor(4) as pool,
            ):
                codes = pool.map(
                    lambda i: api.post("/jobs", json={"prompt": f"{name} {i}"}).status_code,
                    range(sizes[name]),
                )
                return sum(code == 202 for code in codes)

        started = time.monotonic()
        with ThreadPoolExecutor(3) as pool:
            accepted = sum(pool.map(submit, sizes))
        assert accepted == total, f"only {accepted} of {total} jobs accepted"
        give_up = started + (span or 60 + total / ((rate or 20) / window) * 2) + 30
        with httpx.Client(
            base_url=stack.sandbox_url, timeout=60, headers=stack.sandbox_headers
        ) as sandbox:
            while True:
                created = [
                    c
                    for c in sandbox.get("/_sandbox/calls").json()["calls"]
                    if c["endpoint"] == "createTask"
                ]
                ok = sorted((c for c in created if c["code"] == 200), key=lambda c: c["at"])
                if len(ok) >= total or time.monotonic() > give_up:
                    break
                if span and ok and ok[-1]["at"] - ok[0]["at"] >= span:
                    break
                time.sleep(1)
    first = ok[0]["at"]
    if span:
        ok = [c for c in ok if c["at"] - first <= span]
    seconds = ok[-1]["at"] - first
    if rate:
        # How long past the window each token waited before its next use: the time soraq
        # leaves on the table per token (the margin, the wake-up, the hop to a worker).
        late = sorted(ok[i + rate]["at"] - ok[i]["at"] - window for i in range(len(ok) - rate))
        if late:
            print(
                f"  token reuse beyond the {window:g} s window: p50 {late[len(late) // 2]:.3f} s, "
                f"p90 {late[int(len(late) * 0.9)]:.3f} s, min {late[0]:.3f} s"
            )
    # Of the limit: N creates from the first to the last could have been this many.
    allowed = rate * (seconds / window + 1) if rate else None
    # Fair share while all three had work: the creates up to the small client's last one.
    small_last = max(c["at"] for c in ok if c["prompt"].startswith("small"))
    shares = Counter(c["prompt"].split()[0] for c in ok if c["at"] <= small_last)
    expected = sum(shares.values()) / len(sizes)
    big = [c["at"] for c in ok if c["prompt"].startswith("big")]
    small_first = shares["small"] == sizes["small"] and (
        len(big) < sizes["big"] or small_last < max(big)
    )
    return Burst(
        backend=label,
        sizes=sizes,
        limit=limit if rate else "none",
        created=len(ok),
        refused=sum(c["code"] == 429 for c in created),
        seconds=seconds,
        rate_used=len(ok) / allowed if allowed else None,
        per_second=len(ok) / seconds if seconds else float("nan"),
        spread=max(abs(shares[name] - expected) / expected for name in sizes),
        shares=dict(shares),
        small_first=small_first,
    )


def describe(burst: Burst) -> str:
    used = f"{burst.rate_used:.1%} of the limit, " if burst.rate_used is not None else ""
    return (
        f"burst {'/'.join(map(str, burst.sizes.values()))} ({burst.backend}), limit "
        f"{burst.limit}: {burst.created} creates in {burst.seconds:.0f} s "
        f"({used}{burst.per_second:.1f}/s), 429s {burst.refused}, fair share while all "
        f"queued ±{burst.spread:.1%} {burst.shares}, small client first {burst.small_first}"
    )


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--span", type=float, default=240, help="seconds watched at 20/10s")
    parser.add_argument("--skip-scaled", action="store_true")
    args = parser.parse_args(argv)
    # The production default, not the fast clocks of the test stacks: how often the sweep runs
    # decides how soon a freed token is used.
    sweep = {"SWEEP_INTERVAL": str(Settings.model_fields["sweep_interval"].default)}
    real = run(BURST, 20, 10.0, span=args.span, **sweep)
    print(describe(real))
    assert real.rate_used is not None
    name = f"burst 2,000 / 500 / 50 jobs at Kie's limit, 20 per 10 s ({real.seconds:.0f} s watched)"
    rows = [
        Row(
            "2a",
            name,
            "0 × 429",
            f"**{real.refused}** 429s in {real.created} creates",
            verdict(real.refused == 0),
        ),
        Row(
            "2b",
            "… create rate used while work is queued",
            "≥ 98 %",
            f"**{real.rate_used:.1%}**",
            verdict(real.rate_used >= 0.98),
        ),
        Row(
            "2c",
            "… fair share while all three have work",
            "±10 %",
            f"**±{real.spread:.1%}** {real.shares}",
            verdict(real.spread <= 0.10),
        ),
        Row(
            "2d",
            "… the 50-job client's jobs all start before the 2,000-job backlog is done",
            "yes",
            f"**{'yes' if real.small_first else 'no'}**",
            verdict(real.small_first),
        ),
    ]
    if not args.skip_scaled:
        scaled_sizes = {"big": 400, "mid": 100, "small": 10}
        scaled = run(scaled_sizes, 20, 1.0, **sweep)
        print(describe(scaled))
        unlimited = run(scaled_sizes, None, 1.0, **sweep)
        print(describe(unlimited))
        assert scaled.rate_used is not None
        rows.append(
            Row(
                "2e",
                "burst 400 / 100 / 10 with the window scaled to 20 per **1 s**",
                "0 × 429",
                f"**{scaled.refused}** 429s; {scaled.per_second:.1f} creates/s "
                f"= {scaled.rate_used:.0%} of the limit; with no limit at all this machine's "
                f"pipeline does {unlimited.per_second:.1f}/s",
                verdict(scaled.refused == 0),
            )
        )
    return rows


if __name__ == "__main__":
    main()
