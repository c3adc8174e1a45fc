"""kombu's filesystem transport, with messages that appear whole.

kombu 5.7 creates a message file and then writes into it, so a consumer polling the folder can
take the file in between, read zero bytes and crash on the JSON (seen here under load). Writing
under a temporary name and renaming into place is atomic: a consumer sees all of it or nothing.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from contextlib import suppress
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # The name kombu's _get() expects: sortable time prefix, then "<queue>.msg".
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        # A leading dot keeps the half-written file out of _get()'s "<queue>.msg" match.
        fd, partial = tempfile.mkstemp(dir=self.data_folder_out, prefix=".", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            with suppress(OSError):
                os.unlink(partial)
            raise ChannelError(f"Cannot add message {name!r} to {self.data_folder_out}") from exc


class Transport(filesystem.Transport):
    Channel = Channel
