"""EXPLAIN ANALYZE of the admin listing's queries on PostgreSQL with 1,000,000 jobs.

Starts a throwaway PostgreSQL, migrates it, fills it with generate_series, and writes the plans
and timings to docs/ADMIN_QUERIES.md. A figure, not a test.

    python -m bench.admin_queries [--rows 1000000]
"""

from __future__ import annotations

import argparse
import re
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Select, text

from devstack.services import start_postgres
from models.admin_queries import admin_jobs_page
from models.base import utcnow
from models.db import make_engine
from models.migrate import migrate

CLIENTS = """
INSERT INTO clients (id, name, key_hash, key_prefix, webhook_secret, active, max_active_jobs,
                     created_at)
SELECT 'cl_' || lpad(i::text, 16, '0'), 'client-' || i, md5(i::text) || md5(i::text), 'sk_x',
       'whsec_x', true, 100000, now()
FROM generate_series(1, 20) i
"""
FILL = (
    CLIENTS
    + """;

INSERT INTO jobs (id, client_id, status, model, input, kie_task_id, callback_token, failures,
                  created_at, updated_at, next_check_at)
SELECT 'job_' || lpad(to_hex(i), 24, '0'),
       'cl_' || lpad((1 + i % 20)::text, 16, '0'),
       (ARRAY['succeeded','succeeded','succeeded','succeeded','failed','canceled',
              'generating','queued'])[1 + i % 8],
       (ARRAY['veo3.1-fast/text-to-video','sora-2-image-to-video','kling-2.6/text-to-video',
              'hailuo/2-3-image-to-video-standard'])[1 + (i / 7) % 4],
       json_build_object('prompt', 'prompt number ' || i || ' about ' ||
           (ARRAY['a cat','the sea','mountains','a red fox','city lights'])[1 + i % 5]),
       'task_' || i, md5(i::text) || md5((i + 1)::text), 0,
       now() - (i || ' seconds')::interval, now(),
       CASE WHEN i % 8 IN (6, 7) THEN now() + interval '1 minute' END
FROM generate_series(1, :rows) i;
ANALYZE;
"""
)


def listing_cases(now: datetime) -> dict[str, Select]:
    """The queries `GET /admin/jobs` runs for each kind of filter (page size 50 + 1)."""

    def page(**filters: object) -> Select:
        defaults: dict[str, object] = {
            "statuses": [],
            "model": None,
            "client_id": None,
            "created_after": None,
            "created_before": None,
            "q": None,
            "limit": 51,
            "after": None,
        }
        return admin_jobs_page(**{**defaults, **filters})  # type: ignore[arg-type]

    day5 = now - timedelta(days=5)
    return {
        "newest first, no filter": page(),
        "status = failed": page(statuses=["failed"]),
        "status in (failed, canceled), page 2 (keyset)": page(
            statuses=["failed", "canceled"],
            after=(now - timedelta(hours=50), "job_" + "f" * 24),
        ),
        "model = hailuo": page(model="hailuo/2-3-image-to-video-standard"),
        "client = client-7": page(client_id="cl_" + "7".rjust(16, "0")),
        "created in a one-hour range": page(
            created_after=day5, created_before=day5 + timedelta(hours=1)
        ),
        "q = a job id": page(q="job_" + "abcde".rjust(24, "0")),
        "q = 'number 12345 ' (prompt substring)": page(q="number 12345 "),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    postgres = start_postgres()
    try:
        url = postgres.create_database("admin_bench")
        migrate(url)
        engine = make_engine(url)
        started = time.monotonic()
        with engine.begin() as connection:
            for statement in filter(str.strip, re.split(r";\s*\n", FILL)):
                connection.execute(text(statement), {"rows": args.rows})
        filled = time.monotonic() - started
        now = utcnow()

        cases = listing_cases(now)
        lines = [
            "# Admin listing on PostgreSQL: query plans with 1,000,000 jobs",
            "",
            f"Made by `python -m bench.admin_queries` on this machine (2 cores, PostgreSQL 15, "
            f"{args.rows:,} jobs over 20 clients, filled in {filled:.0f} s, then ANALYZE). "
            "Each query is the one `GET /admin/jobs` runs (page size 50, plus one row to know "
            "whether there is a next page). Times are EXPLAIN ANALYZE's execution time.",
            "",
            "| query | execution time | index used |",
            "|---|---|---|",
        ]
        plans = []
        with engine.connect() as connection:
            for name, statement in cases.items():
                compiled = statement.compile(
                    dialect=engine.dialect, compile_kwargs={"render_postcompile": True}
                )
                sql = str(compiled)
                plan_rows = connection.exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + sql, compiled.params
                ).all()
                plan = "\n".join(row[0] for row in plan_rows)
                took = re.search(r"Execution Time: ([\d.]+) ms", plan)
                indexes = sorted(
                    set(
                        re.findall(
                            r"(?:Index|Bitmap Index) (?:Only )?Scan "
                            r"(?:Backward )?(?:using|on) (\w+)",
                            plan,
                        )
                    )
                )
                lines.append(
                    f"| {name} | {took.group(1) if took else '?'} ms | "
                    f"{', '.join(indexes) or 'none'} |"
                )
                plans.append(f"### {name}\n\n```\n{plan}\n```\n")
        text_out = "\n".join(lines) + "\n\n" + "\n".join(plans)
        target = Path(__file__).resolve().parents[1] / "docs" / "ADMIN_QUERIES.md"
        target.write_text(text_out)
        print("\n".join(lines))
        engine.dispose()
    finally:
        postgres.close()


if __name__ == "__main__":
    main()
