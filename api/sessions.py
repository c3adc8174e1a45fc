"""The dashboard's session-signing key.

A session cookie is trusted only if it was signed with a key derived from BOTH the admin token
and a server-side secret: the token alone would make the key public whenever the token is
(an empty token in a shipped `.env`, a token pasted into a ticket). Rotating either logs every
operator out. With no admin token there is no key at all: the admin side is closed.
"""

from __future__ import annotations

import hashlib
import hmac

from core.config import Settings
from core.server_secret import server_secret


def session_signing_key(settings: Settings) -> str | None:
    """The key sessions are signed with, or None while no admin token is configured."""
    if settings.admin_token is None:
        return None
    token = settings.admin_token.get_secret_value().encode()
    return hmac.new(
        server_secret(settings), b"soraq dashboard sessions\x00" + token, hashlib.sha256
    ).hexdigest()
