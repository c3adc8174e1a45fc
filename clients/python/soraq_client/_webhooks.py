"""Checking a soraq webhook: Standard Webhooks (HMAC-SHA256 over "id.timestamp.body" with the
client's `whsec_` secret), with a five-minute window against replays."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from soraq_client._errors import WebhookVerificationError

TOLERANCE = 5 * 60  # seconds


def verify_webhook(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """The event's JSON if `webhook-signature` is the secret's signature of this body, id and
    timestamp, and the timestamp is within five minutes; else WebhookVerificationError."""
    lower = {k.lower(): v for k, v in headers.items()}
    event_id, stamp, signatures = (
        lower.get("webhook-id"),
        lower.get("webhook-timestamp"),
        lower.get("webhook-signature"),
    )
    if not event_id or not stamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or signature")
    try:
        sent_at = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a number") from None
    if abs((now if now is not None else time.time()) - sent_at) > TOLERANCE:
        raise WebhookVerificationError("webhook-timestamp is too old or in the future")
    raw = body.encode() if isinstance(body, str) else body
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"))
    except ValueError:
        raise WebhookVerificationError("the secret is not a whsec_ secret") from None
    signed = f"{event_id}.{stamp}.".encode() + raw
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in signatures.split():
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return dict(json.loads(raw))
    raise WebhookVerificationError("no signature matches")
