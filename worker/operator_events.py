"""Signed events to operators (OPERATOR_WEBHOOK_URL): the account's low credits, Kie's
catalogue changing. One Standard Webhooks signature with the operator secret, the SSRF guard
on the URL, one attempt within WEBHOOK_TIMEOUT; the caller decides whether to try again."""

from __future__ import annotations

import logging

import httpx
from standardwebhooks import Webhook

from core.config import Settings
from core.netguard import UnsafeURL, resolve
from core.operator_secret import operator_secret
from models.base import utcnow
from worker.webhook_send import post_event

log = logging.getLogger(__name__)


def send_operator_event(
    settings: Settings,
    event_id: str,
    body: str,
    what: str,
    transport: httpx.AsyncBaseTransport | None = None,
) -> bool | None:
    """True when the receiver took it, False when it did not, None when the URL is refused
    (or unset): no attempt was made."""
    if not settings.operator_webhook_url:
        return None
    try:
        checked = resolve(
            settings.operator_webhook_url,
            allow_http=settings.webhook_allow_http,
            allowed=settings.upstream_networks,
        )
    except UnsafeURL as exc:
        log.error("OPERATOR_WEBHOOK_URL refused: %s", exc)
        return None
    stamp = utcnow()
    answer = post_event(
        checked,
        event_id,
        int(stamp.timestamp()),
        body,
        Webhook(operator_secret(settings)).sign(event_id, stamp, body),
        deadline=settings.webhook_timeout,
        transport=transport,
    )
    if answer.status is not None and 200 <= answer.status < 300:
        return True
    log.warning(
        "the %s to OPERATOR_WEBHOOK_URL failed: %s", what, answer.error or f"HTTP {answer.status}"
    )
    return False
