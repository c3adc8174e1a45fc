"""The Python client's own logic: reading an event stream, checking a webhook's signature
(against the Standard Webhooks reference library), and its errors."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import httpx
import pytest
from soraq_client import EventParser, Soraq, SoraqError, WebhookVerificationError, verify_webhook
from soraq_client._sse import parse
from standardwebhooks import Webhook

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def test_events_are_read_across_lines_comments_and_multi_line_data() -> None:
    lines = [
        ": ping",
        "id: 7",
        "event: status",
        'data: {"status":',
        'data: "queued"}',
        "",
        "",
        "id: 8",
        "event: completed",
        'data: {"job": {"id": "job_1", "status": "succeeded", "model": "m",'
        ' "created_at": "2026-11-30T00:00:00Z"}}',
        "",
    ]
    first, second = parse(lines)
    assert (first.id, first.type, first.data) == ("7", "status", {"status": "queued"})
    assert second.job is not None
    assert second.job.done
    assert EventParser().feed("retry: 100") is None


def signed(payload: dict[str, object], at: datetime) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    signature = Webhook(SECRET).sign("msg_1", at, body.decode())
    return body, {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def test_a_webhook_signed_by_the_reference_library_verifies() -> None:
    body, headers = signed({"type": "job.succeeded"}, datetime.now(UTC))
    assert verify_webhook(body, headers, SECRET) == {"type": "job.succeeded"}
    # Header names are case-insensitive; a rotated key's extra signature is fine.
    upper = {k.upper(): v for k, v in headers.items()}
    upper["WEBHOOK-SIGNATURE"] = "v1,AAAA " + headers["webhook-signature"]
    assert verify_webhook(body.decode(), upper, SECRET)["type"] == "job.succeeded"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda b, h: (b + b" ", h),
        lambda b, h: (b, {**h, "webhook-id": "msg_2"}),
        lambda b, h: (b, {**h, "webhook-timestamp": str(int(time.time()) - 600)}),
        lambda b, h: (b, {**h, "webhook-timestamp": "soon"}),
        lambda b, h: (b, {k: v for k, v in h.items() if k != "webhook-signature"}),
    ],
)
def test_a_tampered_stale_or_unsigned_webhook_is_refused(tamper) -> None:  # type: ignore[no-untyped-def]
    body, headers = tamper(*signed({"type": "job.succeeded"}, datetime.now(UTC)))
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, headers, SECRET)


def test_errors_carry_soraqs_code_fields_and_retry_after() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            402,
            headers={"retry-after": "3600"},
            json={"error": {"code": "budget_exceeded", "message": "over", "fields": []}},
        )

    http = httpx.Client(base_url="http://soraq.test", transport=httpx.MockTransport(answer))
    with pytest.raises(SoraqError) as caught:
        Soraq("http://soraq.test", "key", http=http).jobs.create("x")
    assert caught.value.status == 402
    assert caught.value.code == "budget_exceeded"
    assert caught.value.retry_after == 3600
