"""What one job costs the shared services: PostgreSQL transactions and rows written, and Redis
commands, per job, over a run of jobs through a Postgres + Redis stack (callbacks on, a
completion webhook each, results archived) — the figures docs/SCALING.md multiplies out.

Read from PostgreSQL's own counters (`pg_stat_database`: commits, rows inserted, updated and
deleted) and Redis's (`INFO stats`: commands processed), before and after. The counters
include everything the stack does meanwhile — sweeps, beat, the event hub — as a real
deployment's would. A figure, not a test.

    python -m bench.writes_per_job [jobs]
"""

from __future__ import annotations

import sys
import time
import uuid

import httpx
import redis
from sqlalchemy import text

from bench.common import Row, production_stack
from devstack.receiver import webhook_receiver
from models.db import make_engine

IDLE_SECONDS = 20
COUNTERS = (
    "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted "
    "FROM pg_stat_database WHERE datname = current_database()"
)


def _postgres(url: str) -> tuple[int, ...]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_stat_clear_snapshot()"))
            return tuple(int(v) for v in connection.execute(text(COUNTERS)).one())
    finally:
        engine.dispose()


def _redis(url: str) -> int:
    return int(redis.Redis.from_url(url).info("stats")["total_commands_processed"])


def main(jobs: int = 200) -> list[Row]:
    with production_stack(WEBHOOK_ALLOW_HTTP="true") as (stack, label), webhook_receiver() as hooks:
        if label != "postgres + redis":
            print("writes per job: needs PostgreSQL and Redis; skipped")
            return []
        key, _ = stack.create_client("writes")
        api = httpx.Client(base_url=stack.api_url, headers={"authorization": f"Bearer {key}"})
        database, broker = stack.env["DATABASE_URL"], stack.env["CELERY_BROKER_URL"]
        time.sleep(3)  # past start-up's own writes (catalogue, prices)
        # What the idle service writes by itself (sweeps, beat): subtracted below, per second.
        idle_pg, idle_redis, idle_started = _postgres(database), _redis(broker), time.monotonic()
        time.sleep(IDLE_SECONDS)
        pg_before, redis_before, started = _postgres(database), _redis(broker), time.monotonic()
        idle_seconds = started - idle_started
        idle = [(a - b) / idle_seconds for a, b in zip(pg_before, idle_pg, strict=True)]
        idle_commands = (redis_before - idle_redis) / idle_seconds
        run = uuid.uuid4().hex[:6]
        ids = [
            api.post(
                "/jobs", json={"prompt": f"writes {run} {i}", "webhook_url": hooks.url + "/h"}
            ).json()["id"]
            for i in range(jobs)
        ]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and len(hooks.received["/h"]) < jobs:
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        pg_after, redis_after = _postgres(database), _redis(broker)
        done = sum(api.get(f"/jobs/{i}").json()["status"] == "succeeded" for i in ids)
    commits, inserted, updated, deleted = (
        a - b - rate * elapsed for a, b, rate in zip(pg_after, pg_before, idle, strict=True)
    )
    commands = redis_after - redis_before - idle_commands * elapsed
    per_job = (
        f"{commits / jobs:.1f} commits, {inserted / jobs:.1f} rows inserted, "
        f"{updated / jobs:.1f} updated, {deleted / jobs:.1f} deleted; "
        f"{commands / jobs:.0f} Redis commands (beyond an idle service's {idle[0]:.1f} "
        f"commits and {idle_commands:.0f} Redis commands a second)"
    )
    print(f"writes per job ({done}/{jobs} succeeded in {elapsed:.0f} s): {per_job}")
    return [Row("S1", f"one job's cost to Postgres and Redis ({jobs} jobs)", "measured", per_job)]


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
