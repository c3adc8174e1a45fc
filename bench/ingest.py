"""Benchmark 1 — ingest: POST /jobs requests/s and latency for one soraq API process on
PostgreSQL (+ Redis for the nudge), beside a bare FastAPI route inserting one row into the same
table, with wrk (-t1 -c50 -d12s, as in the stack measurements). Single runs on one machine
wander (0.62× to 0.91× on the same code), so the servers take turns, at least three rounds,
and the figure is the median ratio with every run beside it. Also: the same API with tracing
on (OTLP/HTTP to a receiver on this machine) against tracing off.

    python -m bench.ingest [pairs]
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

from bench.common import Row, median, verdict
from devstack.receiver import webhook_receiver
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
TRACING = "ingest with tracing on (OTLP/HTTP to a local receiver) vs off, same pairs"

# Each server's name, its app, the client's extra options and its extra environment.
SERVERS: dict[str, tuple[str, list[str], dict[str, str]]] = {
    "baseline": ("bench.baseline_app:app", [], {}),
    "soraq": ("api.app:create_app", [], {}),
    # Daily and monthly budgets (never reached): the reservation's cost.
    "soraq, budgets": (
        "api.app:create_app",
        ["--daily-credits", "999999999", "--monthly-credits", "999999999"],
        {},
    ),
    "soraq, tracing on": ("api.app:create_app", [], {}),  # OTEL_* added in main()
}


def _client_key(env: dict[str, str], options: list[str]) -> str:
    out = subprocess.run(
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
            *options,
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return next(line.split()[-1] for line in out.splitlines() if line.startswith("API key"))


def _spread(ratios: list[float]) -> str:
    return f"median **{median(ratios):.2f}×** (runs {', '.join(f'{r:.2f}' for r in ratios)})"


def main(pairs: int = 3) -> list[Row]:
    """Every server up at once (each on its own fresh database); then `pairs` rounds, each
    running them one after another, the order reversed every other round, so a machine that
    slows down or speeds up during the run weighs on both sides of each ratio alike."""
    if shutil.which("wrk") is None:
        print("ingest: wrk is not installed (apt-get install wrk); skipped")
        return [Row("1", NAME, "≥ 0.8× baseline", "not run: wrk is not installed")]
    postgres, redis = start_postgres(), start_redis()
    servers: dict[str, tuple[subprocess.Popen[bytes], str, str]] = {}
    with webhook_receiver() as collector:
        try:
            for number, (name, (module, options, extra)) in enumerate(SERVERS.items()):
                url = postgres.create_database(f"ingest_{number}")
                migrate(url)
                env = {
                    **os.environ,
                    "DATABASE_URL": url,
                    "CELERY_BROKER_URL": redis.url,
                    "LOG_LEVEL": "WARNING",
                    "VAR_DIR": tempfile.mkdtemp(),
                    **extra,
                }
                if name == "soraq, tracing on":
                    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.url
                key = _client_key(env, options)
                port = free_port()
                servers[name] = (serve(module, env, port), f"http://127.0.0.1:{port}", key)
            for _, base_url, key in servers.values():
                wait_http(f"{base_url}/docs")
                wrk(f"{base_url}/jobs", key, seconds=3)  # warm up
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
            for round_ in range(pairs):
                order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
                for name in order:
                    _, base_url, key = servers[name]
                    runs[name].append(wrk(f"{base_url}/jobs", key))
                    collector.received.clear()  # spans are counted, not kept
        finally:
            for process, _, _ in servers.values():
                process.terminate()
                process.wait()
            postgres.close()
            redis.close()
    for round_ in range(pairs):
        base = runs["baseline"][round_]["rps"]
        for name, results in runs.items():
            r = results[round_]
            print(
                f"ingest #{round_ + 1} {name:<20} {r['rps']:7.0f} req/s  "
                f"p50 {r['p50']:6.1f} ms  p99 {r['p99']:6.1f} ms  non-2xx {r['errors']:.0f}  "
                f"({r['rps'] / base:.2f}× baseline)"
            )
    ratio = [o["rps"] / b["rps"] for o, b in zip(runs["soraq"], runs["baseline"], strict=True)]
    budgeted = [
        o["rps"] / b["rps"] for o, b in zip(runs["soraq, budgets"], runs["baseline"], strict=True)
    ]
    traced = [
        on["rps"] / off["rps"]
        for on, off in zip(runs["soraq, tracing on"], runs["soraq"], strict=True)
    ]
    # At saturation one process's throughput is the inverse of its time per request: the
    # difference of the inverses is what tracing adds to each request.
    added_ms = [
        (1 / on["rps"] - 1 / off["rps"]) * 1000
        for on, off in zip(runs["soraq, tracing on"], runs["soraq"], strict=True)
    ]
    ours = runs["soraq"]
    measured = (
        f"soraq {median([r['rps'] for r in ours]):.0f} req/s (p50 "
        f"{median([r['p50'] for r in ours]):.0f} ms, p99 {median([r['p99'] for r in ours]):.0f}"
        f" ms) vs baseline {median([r['rps'] for r in runs['baseline']]):.0f} req/s, "
        f"{pairs} alternated pairs: {_spread(ratio)}; a client with budgets {_spread(budgeted)}"
    )
    tracing_cost = (
        f"tracing on ÷ off: {_spread(traced)}; "
        f"+{median(added_ms):.2f} ms of one process's time per request"
    )
    print(measured)
    print(tracing_cost)
    return [
        Row("1", NAME, "≥ 0.8× baseline", measured, verdict(median(ratio) >= 0.8)),
        Row("1t", TRACING, "measured", tracing_cost),
    ]


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
