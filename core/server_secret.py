"""The server-side secret that keys what soraq signs for itself (dashboard sessions, content
links): SESSION_SECRET, or on the embedded default one generated once into var/ and shared
by every process on the machine. Production requires SESSION_SECRET (see Settings)."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from core.config import Settings
from core.private import private_folder

_SECRET_FILE = "session-secret"


def server_secret(settings: Settings) -> bytes:
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value().encode()
    path = Path(settings.var_dir) / _SECRET_FILE
    private_folder(path.parent)
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
