"""Benchmark: soraq's hot queries with 10,000,000 jobs in PostgreSQL — the admin listing, one
sweep (admission's pick, the due checks, the due webhook deliveries), and `/usage` — p50 and
p95 of 20 runs each, and each query's plan (`EXPLAIN (ANALYZE, BUFFERS)`) written to
docs/SCALE_QUERIES.md. A figure, not a test.

The table is what a busy service keeps: jobs spread over 115 days (one every second, about
86,000 a day) and 20 clients, 1 in 1,000 still unfinished (10,000 jobs at Kie or queued), the
admin's trigram index on prompts included. The rows are written with the secondary indexes
dropped and the indexes built afterwards (as a restore would), then VACUUM ANALYZE.

    python -m bench.scale_rows [--rows 10000000]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from bench.admin_queries import CLIENTS, listing_cases
from bench.common import percentile
from core.config import Settings
from devstack.services import start_postgres
from models.base import utcnow
from models.db import make_engine
from models.job_queries import claim_due, claim_due_deliveries
from models.migrate import migrate
from models.usage_queries import usage
from worker.admission import admit

# One slice of rows: i from :first to :last. Finished jobs have no next_check_at (the sweep's
# partial index skips them); one in 1,000 is unfinished: queued or generating at Kie.
JOBS = """
INSERT INTO jobs (id, client_id, status, model, input, kie_task_id, callback_token, failures,
                  priority, credits_estimated, credits_reserved, credits_counted, livemode,
                  created_at, updated_at, finished_at, next_check_at)
SELECT 'job_' || lpad(to_hex(i), 24, '0'),
       'cl_' || lpad((1 + i % 20)::text, 16, '0'),
       CASE WHEN i % 1000 = 0 THEN 'generating' WHEN i % 1000 = 500 THEN 'queued'
            ELSE (ARRAY['succeeded','succeeded','succeeded','succeeded','succeeded',
                        'succeeded','failed','canceled'])[1 + i % 8] END,
       (ARRAY['veo3.1-fast/text-to-video','kling-2.6/text-to-video','seedance-2/text-to-video',
              'hailuo/2-3-image-to-video-standard','wan-2.6/text-to-video'])[1 + (i / 7) % 5],
       json_build_object('prompt', 'prompt number ' || i || ' about ' ||
           (ARRAY['a cat','the sea','mountains','a red fox','city lights'])[1 + i % 5]),
       CASE WHEN i % 1000 = 500 THEN NULL ELSE 'task_' || i END,
       md5(i::text) || md5((i + 1)::text), 0, 1, 40, 40, 0, true,
       now() - (:rows - i || ' seconds')::interval,
       now() - (:rows - i || ' seconds')::interval,
       CASE WHEN i % 1000 IN (0, 500) THEN NULL
            ELSE now() - (:rows - i || ' seconds')::interval + interval '3 minutes' END,
       CASE WHEN i % 1000 = 0 THEN now() + ((i % 60) || ' seconds')::interval
            WHEN i % 1000 = 500 THEN now() - interval '1 second' END
FROM generate_series(:first, :last) i
"""
SLICE = 1_000_000


def _secondary_indexes(engine: Engine) -> list[tuple[str, str]]:
    """The jobs table's indexes that back no constraint (dropped while filling)."""
    with engine.connect() as connection:
        return [
            (row.indexname, row.indexdef)
            for row in connection.execute(
                text(
                    "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                    "WHERE i.tablename = 'jobs' AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
                    "WHERE c.conname = i.indexname)"
                )
            )
        ]


def _fill(engine: Engine, rows: int) -> dict[str, float]:
    indexes = _secondary_indexes(engine)
    took: dict[str, float] = {}
    with engine.begin() as connection:
        connection.execute(text(CLIENTS))
        for name, _ in indexes:
            connection.execute(text(f"DROP INDEX {name}"))
    started = time.monotonic()
    for first in range(1, rows + 1, SLICE):
        with engine.begin() as connection:
            last = min(first + SLICE - 1, rows)
            connection.execute(text(JOBS), {"first": first, "last": last, "rows": rows})
        print(f"  {last:,} rows ({time.monotonic() - started:.0f} s)", flush=True)
    took["insert"] = time.monotonic() - started
    started = time.monotonic()
    with engine.connect() as connection:
        connection.execute(text("SET maintenance_work_mem = '1GB'"))
        for _, definition in indexes:
            connection.execute(text(definition))
            connection.commit()
    took["indexes"] = time.monotonic() - started
    started = time.monotonic()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    took["vacuum"] = time.monotonic() - started
    return took


def _timed(engine: Engine, run: Callable[[Session], object], times: int = 20) -> list[float]:
    timings = []
    for _ in range(times):
        with Session(engine) as session:
            started = time.perf_counter()
            run(session)
            timings.append((time.perf_counter() - started) * 1000)
            session.rollback()  # a claim or an admission changes nothing between runs
    return timings


def _plan(engine: Engine, statement: Any) -> str:
    compiled = statement.compile(
        dialect=engine.dialect, compile_kwargs={"render_postcompile": True}
    )
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS) " + str(compiled), compiled.params
        ).all()
        connection.rollback()
    return "\n".join(row[0] for row in rows)


def _indexes(plan: str) -> str:
    found = re.findall(
        r"(?:Index|Bitmap Index) (?:Only )?Scan (?:Backward )?(?:using|on) (\w+)", plan
    )
    return ", ".join(sorted(set(found))) or "none (sequential)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args()
    postgres = start_postgres()
    try:
        url = postgres.create_database("scale_rows")
        migrate(url)
        engine = make_engine(url)
        took = _fill(engine, args.rows)
        with engine.connect() as connection:
            size = connection.scalar(text("SELECT pg_size_pretty(pg_total_relation_size('jobs'))"))
        now = utcnow()
        settings = Settings(kie_create_rate="20/10s", kie_max_in_flight=1_000_000)
        lease = timedelta(seconds=60)
        cases: dict[str, tuple[Any, Callable[[Session], object]]] = {}
        for name, statement in listing_cases(now).items():
            cases[f"admin listing: {name}"] = (statement, _executor(statement))
        claim = claim_due("postgresql", now=now, limit=500, lease=lease)
        deliveries = claim_due_deliveries("postgresql", now=now, limit=500, lease=lease)
        cases[f"sweep: admission (fair pick from {args.rows // 1000:,} queued)"] = (
            None,
            lambda session: admit(session, settings, utcnow()),
        )
        cases["sweep: claim the due checks (≤ 500)"] = (claim, _executor(claim))
        cases["sweep: claim the due webhook deliveries"] = (deliveries, _executor(deliveries))
        for label, start, client in (
            ("/usage by day, last 24 h", now - timedelta(days=1), None),
            ("/usage by model, last 30 days", now - timedelta(days=30), None),
            ("/usage by client, last 30 days", now - timedelta(days=30), None),
            ("/usage of one client, by day, last 30 days", now - timedelta(days=30), "7"),
        ):
            group = "day" if "by day" in label else "model" if "model" in label else "client"
            statement = usage(
                "postgresql",
                group,  # type: ignore[arg-type]
                start=start,
                end=now,
                client_id=("cl_" + client.rjust(16, "0")) if client else None,
            )
            cases[label] = (statement, _executor(statement))
        lines = [
            f"# soraq's queries with {args.rows:,} jobs in PostgreSQL",
            "",
            f"Made by `python -m bench.scale_rows` on this machine (2 cores, PostgreSQL 15): "
            f"{args.rows:,} jobs over 20 clients and 115 days, 1 in 1,000 unfinished; "
            f"the jobs table with its indexes takes {size}. Rows written in "
            f"{took['insert']:.0f} s with the secondary indexes dropped, indexes built in "
            f"{took['indexes']:.0f} s, VACUUM ANALYZE {took['vacuum']:.0f} s. Each query 20 "
            "times (a claim or an admission rolled back each time); plans below.",
            "",
            "| query | p50 | p95 | indexes in the plan |",
            "|---|---|---|---|",
        ]
        plans = []
        for name, (statement, run) in cases.items():
            timings = _timed(engine, run)
            plan = _plan(engine, statement) if statement is not None else ""
            lines.append(
                f"| {name} | {statistics.median(timings):.1f} ms | "
                f"{percentile(timings, 95):.1f} ms | {_indexes(plan) if plan else '(several)'} |"
            )
            print(lines[-1], flush=True)
            if plan:
                plans.append(f"### {name}\n\n```\n{plan}\n```\n")
        target = Path(__file__).resolve().parents[1] / "docs" / "SCALE_QUERIES.md"
        target.write_text("\n".join(lines) + "\n\n" + "\n".join(plans))
        engine.dispose()
    finally:
        postgres.close()


def _executor(statement: Any) -> Callable[[Session], object]:
    return lambda session: session.execute(statement).all()


if __name__ == "__main__":
    main()
