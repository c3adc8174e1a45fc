"""The dashboard's session-signing key.

A session cookie is trusted only if it was signed with a key derived from BOTH the admin token
and a server-side secret: the token alone would make the key public whenever the token is
(an empty token in a shipped `.env`, a token pasted into a ticket). Rotating either logs every
operator out. With no admin token there is no key at all: the admin side is closed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from soraq.config import Settings

_SECRET_FILE = "session-secret"


def server_secret(settings: Settings) -> bytes:
    """SESSION_SECRET, or (embedded default) one generated once into var/ and reused by every
    process on this machine. Production requires SESSION_SECRET (see Settings)."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value().encode()
    path = Path(settings.var_dir) / _SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: of several processes starting at once, exactly one writes the secret.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    for _ in range(50):  # another process may be between its create and its write
        value = path.read_text().strip()
        if value:
            return value.encode()
        time.sleep(0.01)
    raise RuntimeError(f"{path} is empty: delete it or set SESSION_SECRET")


def session_signing_key(settings: Settings) -> str | None:
    """The key sessions are signed with, or None while no admin token is configured."""
    if settings.admin_token is None:
        return None
    token = settings.admin_token.get_secret_value().encode()
    return hmac.new(
        server_secret(settings), b"soraq dashboard sessions\x00" + token, hashlib.sha256
    ).hexdigest()
