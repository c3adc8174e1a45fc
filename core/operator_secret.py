"""The secret that signs soraq's own account events to OPERATOR_WEBHOOK_URL (Standard
Webhooks). Derived from the server secret, so every process agrees without storing another
one; `soraq operator-secret` prints it for the receiver's configuration."""

from __future__ import annotations

import base64
import hashlib
import hmac

from core.config import Settings
from core.server_secret import server_secret


def operator_secret(settings: Settings) -> str:
    key = hmac.new(server_secret(settings), b"soraq operator webhooks v1", hashlib.sha256)
    return "whsec_" + base64.b64encode(key.digest()).decode()
