"""Helpers shared by the benchmarks: a stack on PostgreSQL + Redis when this machine has them
(the production shape), else the embedded default."""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from devstack.services import Unavailable, start_postgres, start_redis
from devstack.stack import LocalStack, local_stack


@contextmanager
def production_stack(
    *, callbacks: bool = True, **overrides: str
) -> Iterator[tuple[LocalStack, str]]:
    """Yields the running stack and a label saying which backends it runs on."""
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soraq-bench-")))
        label = "sqlite + file broker"
        try:
            redis = start_redis()
            stack.callback(redis.close)
            postgres = start_postgres()
            stack.callback(postgres.close)
            overrides = {
                "DATABASE_URL": postgres.create_database("bench"),
                "CELERY_BROKER_URL": redis.url,
                **overrides,
            }
            label = "postgres + redis"
        except Unavailable:
            pass
        yield stack.enter_context(local_stack(folder, callbacks=callbacks, **overrides)), label


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Row:
    """One line of the summary table `make bench` prints at the end."""

    number: str
    benchmark: str
    goal: str
    measured: str
    verdict: str = "—"  # "met", "missed" or "—" (a figure without a goal)


def verdict(met: bool) -> str:
    return "met" if met else "missed"


def print_table(rows: list[Row]) -> None:
    """A Markdown table: readable in a terminal, and pasted as is into docs/BENCHMARKS.md."""
    header = Row("#", "benchmark", "goal", "measured", "verdict")
    lines = [header, Row("---", "---", "---", "---", "---"), *rows]
    widths = [
        max(len(getattr(r, f)) for r in lines) for f in ("number", "benchmark", "goal", "measured")
    ]
    for r in lines:
        cells = [r.number, r.benchmark, r.goal, r.measured]
        padded = [
            c.ljust(w, "-" if r.number == "---" else " ")
            for c, w in zip(cells, widths, strict=True)
        ]
        print("| " + " | ".join([*padded, r.verdict]) + " |")
