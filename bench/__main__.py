"""`make bench`: every benchmark in turn, each printing its own lines, then one table.

    python -m bench [--quick]

Figures, never pass/fail: nothing in `make test` depends on them. The table is Markdown, as
docs/BENCHMARKS.md keeps it.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from collections.abc import Callable

from bench import (
    archive,
    catalogue,
    clients,
    e2e_embedded,
    held,
    ingest,
    kie_capacity,
    sweep_scale,
    watching,
    worker_memory,
    writes_per_job,
)
from bench.common import Row, print_table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--quick", action="store_true", help="shorter spans and fewer jobs: a smoke run"
    )
    args = parser.parse_args()
    quick = args.quick
    suite: list[tuple[str, Callable[[], list[Row]]]] = [
        ("ingest", lambda: ingest.main(2 if quick else 3)),
        (
            "burst admission",
            lambda: kie_capacity.main(["--span", "30", "--skip-scaled"] if quick else []),
        ),
        ("watching Kie", lambda: watching.main(["--duration", "10"] if quick else [])),
        ("sweep at scale", sweep_scale.main),
        ("worker memory", lambda: worker_memory.main(["--seconds", "10"] if quick else [])),
        ("embedded end to end", lambda: e2e_embedded.main(["--jobs", "20"] if quick else [])),
        ("archiving", lambda: archive.main(["--mb", "50"] if quick else [])),
        (
            "webhook latency with archiving",
            lambda: watching.main(
                ["--size", "20MB", "--duration", "10", "--jobs", "10" if quick else "20"]
            ),
        ),
        ("batches and waiting clients", lambda: clients.main(["--batches", "2"] if quick else [])),
        ("held connections", lambda: held.main(["--streams", "100"] if quick else [])),
        ("the whole catalogue", catalogue.main),
        ("writes per job", lambda: writes_per_job.main(50 if quick else 200)),
    ]
    rows: list[Row] = []
    started = time.monotonic()
    for name, bench in suite:
        print(f"\n=== {name} ===", flush=True)
        rows += bench()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(
        f"\n=== summary: commit {commit or '?'}, {time.strftime('%Y-%m-%d')}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{len(os.sched_getaffinity(0))} cores, {(time.monotonic() - started) / 60:.0f} min ===\n"
    )
    print_table(rows)


if __name__ == "__main__":
    main()
