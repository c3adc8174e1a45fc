"""Two upstream accounts (UPSTREAMS_FILE), each a sandbox of its own with its own key: jobs
go to the first by priority; when it runs out of credits mid-burst its jobs flow to the
second, none fails and none is paid twice; when it is back, new jobs prefer it again."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.accounts_stack import (
    AccountSandboxes,
    sandbox_ports,
    stack_with_accounts,
)
from tests.integration.conftest import (
    ADMIN_TOKEN,
    EMBEDDED,
    PRODUCTION,
    Services,
    Stack,
)

KEYS = {"KIE_A_KEY": "sk-account-a-0123456789", "KIE_B_KEY": "sk-account-b-9876543210"}


def _accounts(ports: dict[str, int]) -> str:
    return "".join(
        f"""
[[accounts]]
name = "{name}"
provider = "kie-compatible"
base_url = "http://127.0.0.1:{port}"
key_env = "KIE_{name.upper()}_KEY"
create_rate = "36/1s"
max_in_flight = 100
priority = {priority}
"""
        for priority, (name, port) in enumerate(ports.items(), start=1)
    )


class TwoAccounts(AccountSandboxes):
    def created(self) -> dict[str, Counter[str]]:
        """Tasks each account's sandbox made, by prompt (refused calls are not tasks)."""
        return {
            name: Counter(c["prompt"] for c in self.calls(name) if c["code"] == 200)
            for name in self.sandboxes
        }

    def accounts_of(self, job_ids: list[str]) -> dict[str, str | None]:
        return {job_id: job.account for job_id, job in self.rows(job_ids).items()}


@pytest.fixture(scope="module", params=[EMBEDDED, PRODUCTION])
def two(
    request: pytest.FixtureRequest,
    services: Services | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TwoAccounts]:
    folder = tmp_path_factory.mktemp("accounts")
    ports = sandbox_ports("a", "b")
    keys = {name: (port, KEYS[f"KIE_{name.upper()}_KEY"]) for name, port in ports.items()}
    with stack_with_accounts(
        request.param, services, folder, _accounts(ports), keys, **KEYS
    ) as stack:
        yield TwoAccounts(stack, ports)


def _calls(two: TwoAccounts, name: str, job_id: str) -> list[dict[str, object]]:
    """Account `name`'s createTask calls for the job (its callback URL names it)."""
    token = two.stack.api.get(f"/jobs/{job_id}").json()["input"]["prompt"]
    return [c for c in two.calls(name) if c["prompt"] == token]


def _history(stack: Stack, job_id: str) -> list[str]:
    events = stack.api.get(
        f"/admin/jobs/{job_id}", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()["events"]
    return [
        f"{e['at']} {e['kind']} {e.get('from_status')}->{e.get('to_status')}: {e['reason']}"
        f" {e.get('detail') or ''}"
        for e in events
    ]


def _wait(stack: Stack, job_id: str) -> dict[str, Any]:
    try:
        return stack.wait(job_id, timeout=60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n  " + "\n  ".join(_history(stack, job_id))) from None


def _both_live(stack: Stack) -> bool:
    models = stack.api.get("/models").json()["data"]
    veo = next(m for m in models if m["id"] == "veo3.1-fast/text-to-video")
    return [r["status"] for r in veo["routes"]] == ["live", "live"]


def _unique(text: str) -> str:
    return f"{text} [kie:slow=1] #{uuid.uuid4().hex[:8]}"


def test_jobs_go_to_the_first_account_then_flow_to_the_second_when_it_runs_dry(
    two: TwoAccounts,
) -> None:
    stack = two.stack
    # Both accounts have been looked at (balances read, neither paused) before the first jobs.
    deadline = time.monotonic() + 30
    while not _both_live(stack):
        assert time.monotonic() < deadline, stack.api.get("/models").text[:2000]
        time.sleep(0.2)
    first = [stack.create(prompt=_unique(f"to a {i}"))["id"] for i in range(3)]
    assert {stack.wait(j)["status"] for j in first} == {"succeeded"}
    placed = two.accounts_of(first)
    assert set(placed.values()) == {"a"}, "\n\n".join(
        "\n".join(_history(stack, j)) for j in first if placed[j] != "a"
    )

    # Account a runs out of credits in the middle of a burst.
    burst = [stack.create(prompt=_unique(f"burst {i}"))["id"] for i in range(4)]
    two.sandboxes["a"].post("/_sandbox/config", json={"account_code": 402})
    burst += [stack.create(prompt=_unique(f"burst {i}"))["id"] for i in range(4, 12)]
    ended = {j: _wait(stack, j) for j in burst}
    failed = [j for j, job in ended.items() if job["status"] != "succeeded"]
    assert not failed, "\n".join(
        f"{ended[j]['error']} {where_now}: " + "\n  ".join(_history(stack, j))
        for j in failed
        for where_now in [two.accounts_of([j])[j]]
    )
    where = two.accounts_of(burst)
    assert "b" in where.values()  # the dry account's jobs went on elsewhere

    created = two.created()
    prompts = [job["input"]["prompt"] for job in ended.values()]
    for prompt in prompts:
        # Each job was made once, at exactly one account: never paid twice.
        assert created["a"][prompt] + created["b"][prompt] == 1, prompt
    for job_id, job in ended.items():
        assert created[where[job_id] or ""][job["input"]["prompt"]] == 1  # where it says

    # A job that met the dry account says so in its history, and where it could go.
    met = [
        j for j in burst if where[j] == "b" and any(c["code"] == 402 for c in _calls(two, "a", j))
    ]
    assert met  # (the jobs made after the switch were first given to a, which answered 402)
    history = _history(stack, met[0])
    assert any("paused for account a; the job may go to b" in e for e in history), history

    # GET /models shows each model's routes and their health, no key and no address.
    models = stack.api.get("/models").json()["data"]
    veo = next(m for m in models if m["id"] == "veo3.1-fast/text-to-video")
    assert veo["routes"] == [
        {
            "account": "a",
            "provider": "kie-compatible",
            "status": "paused",
            "reason": "kie_insufficient_credits",
        },
        {"account": "b", "provider": "kie-compatible", "status": "live", "reason": None},
    ]
    shown = stack.api.get("/models").text
    assert "127.0.0.1" not in shown
    assert all(key not in shown for key in KEYS.values())

    # Metrics, readiness and the admin figures are per account: a is paused, b carries on.
    metrics = stack.api.get("/metrics").text
    assert 'soraq_account_paused{account="a",reason="kie_insufficient_credits"} 1.0' in metrics
    assert 'soraq_account_paused{account="b",reason=""} 0.0' in metrics
    assert 'soraq_kie_calls_total{account="b",code="200",endpoint="createTask"' in metrics
    assert 'soraq_account_in_flight{account="a"}' in metrics
    ready = stack.api.get("/readyz")
    assert ready.status_code == 200  # b still takes jobs
    assert (
        ready.json()["checks"]["kie_account"] == "accepted; refused: a (kie_insufficient_credits)"
    )
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    figures = stack.api.get("/admin/stats", headers=admin).json()["accounts"]
    assert list(figures) == ["a", "b"]
    assert (figures["a"]["paused"], figures["b"]["paused"]) == ("kie_insufficient_credits", None)
    assert figures["b"]["max_in_flight"] == 100

    # A job pinned to a (by `route`, or by forbidding failover: a is the model's first
    # route) waits with a's reason while a is dry; nothing else does.
    pinned = stack.create(prompt=_unique("pinned to a"), route="a")
    stays = stack.create(prompt=_unique("no failover"), failover=False)
    assert (pinned["route"], stays["route"]) == ("a", "a")
    free = stack.create(prompt=_unique("free to fail over"))
    assert stack.wait(free["id"])["status"] == "succeeded"
    for job in (pinned, stays):
        # Between probes it is queued with a's reason (as a's probe it is briefly submitting).
        deadline = time.monotonic() + 15
        seen = stack.api.get(f"/jobs/{job['id']}").json()
        while (seen["status"], seen["waiting_reason"]) != ("queued", "kie_insufficient_credits"):
            assert seen["status"] in ("queued", "uploading", "submitting"), seen
            assert time.monotonic() < deadline, _history(stack, job["id"])
            time.sleep(0.05)
            seen = stack.api.get(f"/jobs/{job['id']}").json()
    assert not any(
        two.created()[name][job["input"]["prompt"]]
        for name in ("a", "b")
        for job in (pinned, stays)
    )
    wrong = stack.api.post("/jobs", json={"prompt": "x", "route": "c"})
    assert wrong.status_code == 422
    assert "this model's routes are: a, b" in wrong.text

    # Account a is topped up: its next probe is accepted and new jobs prefer it again. (A
    # refusal answered just before the top-up may pause it once more, for one probe
    # interval: so what is asked is three jobs in a row at a, within half a minute.)
    two.sandboxes["a"].post("/_sandbox/config", json={"account_code": 0})
    deadline = time.monotonic() + 40
    in_a_row = 0
    while in_a_row < 3 and time.monotonic() < deadline:
        job_id = stack.create(prompt=_unique("after top-up"))["id"]
        assert stack.wait(job_id)["status"] == "succeeded"
        in_a_row = in_a_row + 1 if two.accounts_of([job_id])[job_id] == "a" else 0
    assert in_a_row == 3
    for job in (pinned, stays):  # the pinned jobs went to a, and only there
        assert _wait(stack, job["id"])["status"] == "succeeded"
        assert two.accounts_of([job["id"]])[job["id"]] == "a"
        assert two.created()["b"][job["input"]["prompt"]] == 0
    routes = next(m for m in stack.api.get("/models").json()["data"] if m["id"] == veo["id"])
    assert [r["status"] for r in routes["routes"]] == ["live", "live"]
