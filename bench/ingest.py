"""Benchmark 1 — ingest: POST /jobs requests/s and latency for one soraq API process on
PostgreSQL (+ Redis for the nudge), beside a bare FastAPI route inserting one row into the same
table, in the same run, with wrk (-t1 -c50 -d12s, as in the stack measurements).

    python -m bench.ingest
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

from bench.common import Row, verdict
from devstack.services import start_postgres, start_redis
from devstack.stack import free_port, wait_http
from models.migrate import migrate

LUA = """wrk.method = "POST"
wrk.body = '{"prompt": "A cute cat playing in a garden"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""


def wrk(url: str, key: str, seconds: int = 12) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA % key)
    out = subprocess.run(
        ["wrk", "-t1", "-c50", f"-d{seconds}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)

    def ms(label: str) -> float:
        match = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": ms("50"),
        "p99": ms("99"),
        "errors": float(non_2xx.group(1)) if non_2xx else 0,
    }


def serve(module: str, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            module,
            "--port",
            str(port),
            "--log-level",
            "warning",
            *(["--factory"] if "create_app" in module else []),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


NAME = "ingest: `POST /jobs` on Postgres vs a bare insert route, `wrk -t1 -c50 -d12s`"


def main() -> list[Row]:
    if shutil.which("wrk") is None:
        print("ingest: wrk is not installed (apt-get install wrk); skipped")
        return [Row("1", NAME, "≥ 0.8× baseline", "not run: wrk is not installed")]
    postgres, redis = start_postgres(), start_redis()
    try:
        results = {}
        for name, module, budget in (
            ("baseline: bare insert route", "bench.baseline_app:app", []),
            ("soraq POST /jobs", "api.app:create_app", []),
            # The same with daily and monthly budgets (never reached): the reservation's cost.
            (
                "soraq POST /jobs, budgets",
                "api.app:create_app",
                ["--daily-credits", "999999999", "--monthly-credits", "999999999"],
            ),
        ):
            url = postgres.create_database(f"ingest_{len(results)}")
            migrate(url)
            env = {
                **os.environ,
                "DATABASE_URL": url,
                "CELERY_BROKER_URL": redis.url,
                "LOG_LEVEL": "WARNING",
                "VAR_DIR": tempfile.mkdtemp(),
            }
            key = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "soraq.cli",
                    "clients",
                    "create",
                    "bench",
                    "--max-active-jobs",
                    "100000000",
                    "--create-rate",
                    "100000000/1s",
                    *budget,
                ],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            key = next(line.split()[-1] for line in key.splitlines() if line.startswith("API key"))
            port = free_port()
            server = serve(module, env, port)
            try:
                wait_http(f"http://127.0.0.1:{port}/docs")
                wrk(f"http://127.0.0.1:{port}/jobs", key, seconds=3)  # warm up
                results[name] = wrk(f"http://127.0.0.1:{port}/jobs", key)
            finally:
                server.terminate()
                server.wait()
        base = results["baseline: bare insert route"]["rps"]
        for name, r in results.items():
            print(
                f"ingest {name:<30} {r['rps']:7.0f} req/s  p50 {r['p50']:6.1f} ms  "
                f"p99 {r['p99']:6.1f} ms  non-2xx {r['errors']:.0f}  "
                f"({r['rps'] / base:.2f}× baseline)"
            )
        ours = results["soraq POST /jobs"]
        ratio = ours["rps"] / base
        budgeted = results["soraq POST /jobs, budgets"]
        measured = (
            f"soraq {ours['rps']:.0f} req/s (p50 {ours['p50']:.0f} ms, p99 {ours['p99']:.0f} ms) "
            f"vs baseline {base:.0f} req/s: **{ratio:.2f}×**; a client with budgets "
            f"{budgeted['rps']:.0f} req/s ({budgeted['rps'] / base:.2f}×)"
        )
        return [Row("1", NAME, "≥ 0.8× baseline", measured, verdict(ratio >= 0.8))]
    finally:
        postgres.close()
        redis.close()


if __name__ == "__main__":
    main()
