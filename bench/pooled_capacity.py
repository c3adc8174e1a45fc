"""Benchmark 2f — pooled capacity: two upstream accounts (UPSTREAMS_FILE), each a sandbox of
its own that enforces Kie's limits for its key (20 new tasks per 10 s, 100 at once), take one
burst together. Goal: the creates of both, while work is queued, use ≥ 98 % of their summed
limit (40 per 10 s), with no 429 at either. Counted from the two sandboxes' own call logs.

    python -m bench.pooled_capacity [--span 120] [--jobs 1200]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.common import Row, production_stack, verdict
from core.config import Settings
from devstack.stack import free_port, wait_http
from models.db import make_engine
from models.event import JobEvent

RATE, WINDOW = 20, 10.0
KEYS = {"a": "sk-bench-account-a-0123456789", "b": "sk-bench-account-b-9876543210"}


@dataclass
class Pooled:
    backend: str
    created: int
    seconds: float
    rate_used: float  # share of the summed limit used from the first create to the last
    per_account: dict[str, int]
    refused: dict[str, int]  # 429s each sandbox answered


def _accounts_file(folder: Path, ports: dict[str, int]) -> Path:
    path = folder / "upstreams.toml"
    path.write_text(
        "".join(
            f'[[accounts]]\nname = "{name}"\nprovider = "kie-compatible"\n'
            f'base_url = "http://127.0.0.1:{port}"\nkey_env = "BENCH_{name.upper()}_KEY"\n'
            f'create_rate = "{RATE}/{WINDOW:g}s"\nmax_in_flight = 100\npriority = {i}\n\n'
            for i, (name, port) in enumerate(ports.items(), start=1)
        )
    )
    return path


def _token_not_free(database_url: str) -> tuple[list[float], int]:
    """When a job's message ran, its account's token was not free yet: the waits of those
    sent back to admission (worker.submit: "waiting N s for account …"), and how many waited
    for their token with a countdown instead ("… token frees in N s")."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            back = session.scalars(
                select(JobEvent.reason).where(JobEvent.reason.like("waiting % for account %"))
            ).all()
            deferred = session.scalar(
                select(func.count()).where(JobEvent.reason.like("% token frees in %"))
            )
    finally:
        engine.dispose()
    return [float(str(r).split()[1]) for r in back], int(deferred or 0)


def run(jobs: int, span: float, folder: Path, dump: Path | None = None) -> Pooled:
    ports = {name: free_port() for name in KEYS}
    limit = f"{RATE}/{WINDOW:g}s"
    overrides = {
        "UPSTREAMS_FILE": str(_accounts_file(folder, ports)),
        **{f"BENCH_{name.upper()}_KEY": key for name, key in KEYS.items()},
        "SANDBOX_CREATE_RATE": limit,  # each sandbox holds its key to Kie's window
        "SANDBOX_MAX_CONCURRENT": "100",
        "SANDBOX_DURATION": "1",
        "LOG_LEVEL": "WARNING",
        # The production default, not the test stacks' fast clock.
        "SWEEP_INTERVAL": str(Settings.model_fields["sweep_interval"].default),
    }
    with production_stack(**overrides) as (stack, label):
        for name, port in ports.items():
            env = {"SANDBOX_ACCOUNT_KEY": KEYS[name]}
            stack.start(f"sandbox-{name}", "sandbox", "--port", str(port), env=env)
        for port in ports.values():
            wait_http(f"http://127.0.0.1:{port}/healthz")
        key = stack.create_client("bench-pooled", max_active_jobs=100_000)[0]
        with (
            httpx.Client(
                base_url=stack.api_url, timeout=60, headers={"authorization": f"Bearer {key}"}
            ) as api,
            ThreadPoolExecutor(4) as pool,
        ):
            codes = list(
                pool.map(
                    lambda i: api.post("/jobs", json={"prompt": f"pooled {i}"}).status_code,
                    range(jobs),
                )
            )
        assert codes.count(202) == jobs, Counter(codes)
        sandboxes = {
            name: httpx.Client(
                base_url=f"http://127.0.0.1:{port}", timeout=60, headers=stack.sandbox_headers
            )
            for name, port in ports.items()
        }
        give_up = time.monotonic() + span + 120
        while True:
            calls = {
                name: [
                    c
                    for c in sandbox.get("/_sandbox/calls").json()["calls"]
                    if c["endpoint"] == "createTask"
                ]
                for name, sandbox in sandboxes.items()
            }
            ok = sorted(
                ((c, name) for name, made in calls.items() for c in made if c["code"] == 200),
                key=lambda pair: pair[0]["at"],
            )
            if len(ok) >= jobs or time.monotonic() > give_up:
                break
            if ok and ok[-1][0]["at"] - ok[0][0]["at"] >= span:
                break
            time.sleep(1)
        for sandbox in sandboxes.values():
            sandbox.close()
        requeued, deferred = _token_not_free(stack.env["DATABASE_URL"])
    for name in KEYS:
        mine = [c["at"] for c, at in ok if at == name]
        late = sorted(mine[i + RATE] - mine[i] - WINDOW for i in range(len(mine) - RATE))
        if late:
            # How long each window's 20 creates take to go out (the first window's).
            spread = mine[RATE - 1] - mine[0] if len(mine) >= RATE else float("nan")
            print(
                f"  account {name}: token reuse beyond the {WINDOW:g} s window: p50 "
                f"{late[len(late) // 2]:.3f} s, p90 {late[int(len(late) * 0.9)]:.3f} s, "
                f"min {late[0]:.3f} s; a window's {RATE} creates go out over {spread:.2f} s"
            )
    if dump is not None:  # every accepted create, (time, account), for a closer look
        dump.write_text(json.dumps([(c["at"], name) for c, name in ok]))
    waits = sorted(requeued)
    print(
        f"  token not free yet when a job's message ran: {deferred} waited for it, "
        f"{len(waits)} went back to admission"
        + (f" (the wait they met p50 {waits[len(waits) // 2]:.3f} s)" if waits else "")
    )
    first = ok[0][0]["at"]
    kept: list[tuple[dict[str, Any], str]] = [p for p in ok if p[0]["at"] - first <= span]
    seconds = kept[-1][0]["at"] - first
    # Of the summed limit: N creates from the first to the last could have been this many.
    allowed = 2 * RATE * (seconds / WINDOW + 1)
    return Pooled(
        backend=label,
        created=len(kept),
        seconds=seconds,
        rate_used=len(kept) / allowed,
        per_account=dict(Counter(name for _, name in kept)),
        refused={name: sum(c["code"] == 429 for c in made) for name, made in calls.items()},
    )


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--span", type=float, default=120, help="seconds watched")
    parser.add_argument("--jobs", type=int, default=1200)
    parser.add_argument("--dump", type=Path, help="write each create's (time, account) here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soraq-pooled-") as folder:
        pooled = run(args.jobs, args.span, Path(folder), args.dump)
    print(
        f"pooled burst of {args.jobs} ({pooled.backend}), two accounts of {RATE}/{WINDOW:g}s: "
        f"{pooled.created} creates in {pooled.seconds:.0f} s = {pooled.rate_used:.1%} of "
        f"{2 * RATE}/{WINDOW:g}s, by account {pooled.per_account}, 429s {pooled.refused}"
    )
    return [
        Row(
            "2f",
            f"burst of {args.jobs} over two accounts of 20 per 10 s each "
            f"({pooled.seconds:.0f} s watched): summed create rate used",
            "≥ 98 % of 40 per 10 s, 0 × 429 at each",
            f"**{pooled.rate_used:.1%}**, {pooled.per_account}, 429s {pooled.refused}",
            verdict(pooled.rate_used >= 0.98 and not any(pooled.refused.values())),
        )
    ]


if __name__ == "__main__":
    main()
