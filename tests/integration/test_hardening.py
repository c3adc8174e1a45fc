"""Findings of the adversarial review, kept fixed end to end on both stacks."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from devstack.receiver import slow_receiver, webhook_receiver
from tests.integration.conftest import ADMIN_TOKEN, Stack


def unique(prompt: str) -> str:
    return f"{prompt} #{uuid.uuid4().hex[:8]}"


def test_slow_webhook_receivers_never_stall_jobs(stack: Stack) -> None:
    with slow_receiver() as slow:
        hooked = [
            stack.create(prompt=unique("to a slow receiver"), webhook_url=f"{slow.url}/{path}")
            for path in ["headers", "body"] * 5
        ]
        deadline = time.monotonic() + 20
        while slow.connections < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert slow.connections >= 4, "the deliveries never reached the receiver"

        # Ten deliveries are hanging on the receiver: a plain job must not notice.
        plain = stack.create(prompt=unique("a plain job meanwhile"))
        assert stack.wait(plain["id"], timeout=30)["status"] == "succeeded"
        assert slow.most_at_once <= 4  # WEBHOOK_MAX_IN_FLIGHT_PER_HOST

        # The receiver that sends `200` at once has its event delivered; the one that trickles
        # its headers is cut off at WEBHOOK_TIMEOUT, and the attempt recorded as such.
        def webhook(job_id: str) -> dict[str, object]:
            return dict(stack.api.get(f"/jobs/{job_id}").json()["webhook"] or {})

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = [webhook(job["id"]) for job in hooked]
            body_ok = all(s.get("state") == "delivered" for s in states[1::2])
            headers_cut = all(
                "WEBHOOK_TIMEOUT" in str(s.get("last_error") or "") for s in states[0::2]
            )
            if body_ok and headers_cut:
                break
            time.sleep(0.5)
        assert body_ok, states
        assert headers_cut, states


def callback_url_of(stack: Stack, prompt: str) -> str:
    [call] = [c for c in stack.calls("createTask") if c.get("prompt") == prompt and c["code"]]
    return str(call["callback_url"])


def test_a_callback_is_read_to_64_kb_and_only_for_a_known_token(stack: Stack) -> None:
    prompt = unique("a callback target [kie:slow=3] [kie:nocallback]")
    stack.create(prompt=prompt)
    deadline = time.monotonic() + 10
    while not [c for c in stack.calls("createTask") if c.get("prompt") == prompt]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    path = callback_url_of(stack, prompt).removeprefix(stack.env["PUBLIC_URL"])
    big = b'{"data": {"taskId": "' + b"x" * 100_000 + b'"}}'
    response = stack.api.post(path, content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    # Chunked, with no length to trust: counted as it arrives.
    chunks = (b"x" * 8192 for _ in range(20))
    assert stack.api.post(path, content=chunks).status_code == 413
    # An unknown token is a 404 before a byte of the body is read.
    unknown = stack.api.post("/kie/callback/not-a-token", content=big)
    assert unknown.status_code == 404


def test_repeated_callbacks_cost_one_upstream_read(stack: Stack) -> None:
    prompt = unique("a callback storm [kie:slow=6] [kie:nocallback]")
    job = stack.create(prompt=prompt)
    deadline = time.monotonic() + 10
    while stack.api.get(f"/jobs/{job['id']}").json()["kie_task_id"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    task_id = stack.api.get(f"/jobs/{job['id']}").json()["kie_task_id"]
    path = callback_url_of(stack, prompt).removeprefix(stack.env["PUBLIC_URL"])
    before = len([c for c in stack.calls("recordInfo") if c["task_id"] == task_id])
    started = time.monotonic()
    answers = [stack.api.post(path, json={"data": {"taskId": task_id}}) for _ in range(20)]
    assert all(a.status_code == 200 for a in answers)
    assert sum(a.json()["checked"] for a in answers) == 1  # CALLBACK_DEBOUNCE: 5 s
    time.sleep(max(0.0, 1.5 - (time.monotonic() - started)))
    reads = len([c for c in stack.calls("recordInfo") if c["task_id"] == task_id]) - before
    # One read for the storm, plus the safety-net checks (every 1 s here) that run anyway.
    assert reads <= 3, reads


def test_a_lost_createtask_answer_is_adopted_from_its_callback(stack: Stack) -> None:
    prompt = unique("the answer is lost [kie:lostreply] [kie:slow=2]")
    created = stack.create(prompt=prompt, model="kling-2.6/text-to-video")
    deadline = time.monotonic() + 30
    seen: list[tuple[str, str | None]] = []
    job = created
    while job["status"] != "succeeded" and time.monotonic() < deadline:
        job = stack.api.get(f"/jobs/{created['id']}").json()
        seen.append((job["status"], job["waiting_reason"]))
        time.sleep(0.05)
    assert job["status"] == "succeeded", job  # the callback came, and the task was adopted
    # Never failed on the way: the job waited in `submitting`, saying why.
    assert ("failed", None) not in seen
    assert all(status != "failed" for status, _ in seen), seen
    assert ("submitting", "kie_answer_lost") in seen, seen
    assert stack.creates_for(prompt) == 1  # never a second createTask
    events = stack.api.get(
        f"/admin/jobs/{job['id']}", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()["events"]
    reasons = [e["reason"] or "" for e in events]
    assert any("adopted Kie task" in r for r in reasons), reasons
    assert any(e.get("detail") and e["detail"].get("kie_task_id") for e in events)


def test_a_callback_after_the_lease_never_revives_a_failed_job(stack: Stack) -> None:
    # The answer is lost and the callback comes after SUBMIT_LEASE (5 s here): the job has
    # failed as submit_unknown, and it stays failed; the late task is recorded and counted.
    prompt = unique("too late [kie:lostreply] [kie:slow=8]")
    created = stack.create(prompt=prompt, model="kling-2.6/text-to-video")
    failed = stack.wait(created["id"], timeout=30)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "submit_unknown"
    assert "no callback named the task" in failed["error"]["message"]
    [task] = [c["task_id"] for c in stack.calls("createTask") if c["prompt"] == prompt]
    deadline = time.monotonic() + 20
    while not any(c["task_id"] == task for c in stack.calls("callback")):
        assert time.monotonic() < deadline, "the callback never came"
        time.sleep(0.2)
    time.sleep(1.0)  # what the callback would have set off
    job = stack.api.get(f"/jobs/{created['id']}").json()
    assert (job["status"], job["error"]["code"]) == ("failed", "submit_unknown")
    events = stack.api.get(
        f"/admin/jobs/{job['id']}", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()["events"]
    late = [
        e
        for e in events
        if e["kind"] == "callback" and "after the job had ended" in (e["reason"] or "")
    ]
    assert late
    assert late[0]["detail"]["kie_task_id"] == task
    assert "soraq_orphan_tasks_total" in stack.api.get("/metrics").text


def client_api(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=str(stack.api.base_url), headers={"authorization": f"Bearer {key}"}, timeout=30
    )


def test_the_active_job_limit_holds_under_50_parallel_requests(stack: Stack) -> None:
    key, _ = stack.local.create_client(f"limited-{uuid.uuid4().hex[:6]}", max_active_jobs=2)
    with client_api(stack, key) as api, ThreadPoolExecutor(max_workers=25) as pool:
        answers = list(
            pool.map(
                lambda n: api.post("/jobs", json={"prompt": unique(f"race {n} [kie:slow=30]")}),
                range(50),
            )
        )
        codes = sorted(a.status_code for a in answers)
        assert codes.count(202) == 2, codes
        assert set(codes) == {202, 429}
        for answer in answers:
            if answer.status_code == 202:
                api.post(f"/jobs/{answer.json()['id']}/cancel")


def test_a_client_over_its_creation_rate_gets_429_with_retry_after(stack: Stack) -> None:
    name = f"bursty-{uuid.uuid4().hex[:6]}"
    out = stack.local.cli("clients", "create", name, "--create-rate", "3/1m")
    key = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)["API key"].strip()
    with client_api(stack, key) as api:
        made = [api.post("/jobs", json={"prompt": unique("rate")}) for _ in range(3)]
        assert [m.status_code for m in made] == [202, 202, 202]
        refused = api.post("/jobs", json={"prompt": unique("one too many")})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        for job in made:
            api.post(f"/jobs/{job.json()['id']}/cancel")


def test_admin_authentication_is_throttled_per_address(stack: Stack) -> None:
    """Ten wrong tokens from an address, then 429 for its guesses (the login form too) — but
    never for the right token (issue 24, item 10: the operator was locked out)."""
    wrong = {"authorization": "Bearer wrong-token"}
    right = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        codes = [stack.api.get("/admin/jobs", headers=wrong).status_code for _ in range(11)]
        assert codes[:10] == [401] * 10
        assert codes[10] == 429
        refused = stack.api.post("/admin/login", data={"token": "still-wrong"})
        assert refused.status_code == 429  # the login form counts and refuses the same way
        assert stack.api.get("/admin/jobs", headers=right).status_code == 200
        login = stack.api.post("/admin/login", data={"token": ADMIN_TOKEN})
        assert login.status_code == 303
    finally:
        stack.forget_auth_failures()


def test_a_forwarded_address_does_not_escape_the_throttle(stack: Stack) -> None:
    """No TRUSTED_PROXIES: X-Forwarded-For is not believed, so rotating it changes nothing."""
    try:
        codes = [
            stack.api.get(
                "/admin/jobs",
                headers={"authorization": "Bearer wrong", "x-forwarded-for": f"203.0.113.{i}"},
            ).status_code
            for i in range(12)
        ]
        assert codes[10:] == [429, 429]
    finally:
        stack.forget_auth_failures()


def test_many_addresses_meet_the_throttle_for_all_addresses(stack: Stack) -> None:
    """Guessing from many addresses (here 127.0.0.2–11, each under its own limit) meets the
    cap for every address together; the right token still passes."""
    try:
        for host in range(2, 12):
            transport = httpx.HTTPTransport(local_address=f"127.0.0.{host}")
            with httpx.Client(base_url=stack.api.base_url, transport=transport) as guesser:
                codes = {
                    guesser.get("/admin/jobs", headers={"authorization": "Bearer no"}).status_code
                    for _ in range(10)
                }
                assert codes == {401}
        transport = httpx.HTTPTransport(local_address="127.0.0.12")
        with httpx.Client(base_url=stack.api.base_url, transport=transport) as newcomer:
            first = newcomer.get("/admin/jobs", headers={"authorization": "Bearer no"})
            assert first.status_code == 429
            assert "all addresses" in first.json()["error"]["message"]
            right = {"authorization": f"Bearer {ADMIN_TOKEN}"}
            assert newcomer.get("/admin/jobs", headers=right).status_code == 200
    finally:
        stack.forget_auth_failures()


def test_logout_and_revoke_sessions_end_dashboard_sessions(stack: Stack) -> None:
    def logged_in_client() -> tuple[httpx.Client, str]:
        browser = httpx.Client(base_url=str(stack.api.base_url), timeout=10)
        answer = browser.post("/admin/login", data={"token": ADMIN_TOKEN})
        assert answer.status_code == 303
        page = browser.get("/admin")
        assert "<table" in page.text
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        return browser, csrf

    browser, csrf = logged_in_client()
    cookie = browser.cookies.get("soraq_admin")
    assert browser.post("/admin/logout", data={"csrf": csrf}).status_code == 303
    # The same cookie, replayed after logout, opens nothing.
    with httpx.Client(base_url=str(stack.api.base_url), timeout=10) as replay:
        replay.cookies.set("soraq_admin", str(cookie))
        assert "<table" not in replay.get("/admin").text
    browser.close()

    browser, _ = logged_in_client()
    assert "revoked" in stack.local.cli("admin", "revoke-sessions")
    assert "<table" not in browser.get("/admin").text
    browser.close()


def test_dashboard_pages_carry_security_headers(stack: Stack) -> None:
    page = stack.api.get("/admin")
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_a_disabled_key_stops_working_at_once(stack: Stack) -> None:
    name = f"short-lived-{uuid.uuid4().hex[:6]}"
    key, _ = stack.local.create_client(name)
    with client_api(stack, key) as api:
        assert api.get("/jobs").status_code == 200  # now in the API's key cache
        stack.local.cli("clients", "disable", name)
        assert api.get("/jobs").status_code == 401  # no wait for AUTH_CACHE_SECONDS


def test_a_rotated_webhook_secret_signs_beside_the_old_one(stack: Stack) -> None:
    from standardwebhooks import Webhook

    name = f"rotating-{uuid.uuid4().hex[:6]}"
    key, old_secret = stack.local.create_client(name)
    out = stack.local.cli("clients", "rotate-webhook-secret", name, "--grace-hours", "1")
    new_secret = out.split("new webhook secret for", 1)[1].split(":", 1)[1].split()[0]
    with webhook_receiver() as receiver, client_api(stack, key) as api:
        job = api.post(
            "/jobs", json={"prompt": unique("signed twice"), "webhook_url": receiver.script("/r")}
        ).json()
        assert "id" in job, job
        deadline = time.monotonic() + 20
        while not receiver.received["/r"] and time.monotonic() < deadline:
            time.sleep(0.1)
        [delivery] = receiver.received["/r"]
    signatures = delivery.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    for secret in (old_secret, new_secret):  # a receiver with either secret verifies it
        Webhook(secret).verify(delivery.body, delivery.headers)


def test_metrics_hide_nothing_secret_and_readyz_shows_no_revision(stack: Stack) -> None:
    from api.health import migration_head

    ready = stack.api.get("/readyz")
    head = migration_head()
    assert head  # there is a revision to hide
    assert head not in ready.text
    assert "head" in ready.json()["checks"]["database"]
