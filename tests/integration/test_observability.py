"""Every metric the Grafana dashboard and the Prometheus alerts name is served by /metrics
once soraq has done some work (a job archived, its webhook delivered)."""

from __future__ import annotations

import time
import uuid

from prometheus_client.parser import text_string_to_metric_families

from devstack.receiver import webhook_receiver
from tests.integration.conftest import Stack
from tests.observability_files import expressions, metric_names


def test_the_dashboard_and_the_alerts_name_only_served_metrics(stack: Stack) -> None:
    with webhook_receiver() as receiver:
        path = f"/observed-{uuid.uuid4().hex[:6]}"
        job = stack.create(
            prompt=f"Observed {uuid.uuid4().hex[:6]}", webhook_url=receiver.script(path)
        )
        assert stack.wait(job["id"])["status"] == "succeeded"
        deadline = time.monotonic() + 20
        while not receiver.received.get(path):
            assert time.monotonic() < deadline, "the webhook never came"
            time.sleep(0.1)
    deadline = time.monotonic() + 20
    while True:
        families = list(text_string_to_metric_families(stack.api.get("/metrics").text))
        # A family's own name (a gauge with no series yet) or its samples' (_total, _bucket).
        served = {f.name for f in families} | {s.name for f in families for s in f.samples}
        wanted = set().union(*(metric_names(expr) for expr in expressions()))
        missing = wanted - served
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)  # the balance read and the metrics cache catch up
    assert not missing, sorted(missing)
