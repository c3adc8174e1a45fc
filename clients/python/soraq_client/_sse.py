"""Reading `text/event-stream` line by line (the WHATWG rules soraq's streams need: `id`,
`event`, `data` over several lines, comments, a blank line ending each event)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from soraq_client.types import Event


class EventParser:
    def __init__(self) -> None:
        self._id: str | None = None
        self._type = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> Event | None:
        """One line (without its end); returns the event a blank line completes."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: the server's heartbeat
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "id" and "\0" not in value:
            self._id = value
        elif field == "event":
            self._type = value
        elif field == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> Event | None:
        data, kind = "\n".join(self._data), self._type
        self._data, self._type = [], "message"
        if not data:
            return None
        return Event(id=self._id or "", type=kind, data=json.loads(data))


def parse(lines: Iterable[str]) -> list[Event]:
    parser = EventParser()
    return [event for line in lines if (event := parser.feed(line)) is not None]
