"""What every upstream adapter offers the pipeline, and the neutral shapes it answers in.

The pipeline never names a provider: it asks the job's model which upstream family serves it,
then calls that family's adapter through this interface. A family that is not Kie's (fal.ai's
queue API, say) is one more module implementing it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

# Neutral task states. "pending": the upstream does not show the task yet (Kie's "recordInfo is
# null" right after creation). Anything an upstream reports that is not a known state counts as
# still in progress: a task that was paid for is never thrown away over a word we do not know.
State = Literal["pending", "waiting", "queuing", "generating", "success", "fail"]


@dataclass(frozen=True)
class TaskInfo:
    state: State
    progress: int | None = None
    video_urls: list[str] = field(default_factory=list)
    watermarked_video_urls: list[str] = field(default_factory=list)
    fail_code: str = ""
    fail_msg: str = ""
    upstream_state: str = ""  # the upstream's own word, for the history
    callback_url: str | None = None  # the callBackUrl the task was created with, if shown
    # What the task cost, as the upstream reported it, and where ("recordInfo.creditsConsumed").
    charge: tuple[float, str] | None = None


class Upstream(Protocol):
    """One upstream API family: create a task, read it, and read its callbacks."""

    name: str

    def create(self, model: str, input: dict[str, Any], callback_url: str | None) -> str:
        """Create a task; its id. Raises ExternalError (maybe_sent when the outcome is
        unknown: then a task may exist and the job must never be resubmitted)."""
        ...

    def read(self, task_id: str) -> TaskInfo: ...

    def callback_task_id(self, payload: Any) -> str | None:
        """The task id a callback body names, if any (it is never trusted beyond that)."""
        ...


_unknown_seen: set[tuple[str, str]] = set()


MAX_STATE_WORD = 40  # an upstream's state word is kept (history, logs) to this length


def state_word(value: Any) -> str:
    """The upstream's own word for a state, as soraq keeps it: short, one line."""
    return " ".join(str(value if value is not None else "").split())[:MAX_STATE_WORD].lower()


def unknown_state(family: str, word: str) -> State:
    """An upstream state we do not know: logged once per name (a bounded number of names: an
    upstream inventing a new word per answer cannot grow memory or flood the log), and
    counted as in progress."""
    if (family, word) not in _unknown_seen and len(_unknown_seen) < 100:
        _unknown_seen.add((family, word))
        log.warning("%s reported an unknown task state %r: treated as in progress", family, word)
    return "generating"


def as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def url_list(value: Any) -> list[str]:
    """Result URLs from an upstream: only http(s) strings survive (hostile input is dropped)."""
    items = value if isinstance(value, list) else [value] if isinstance(value, str) else []
    return [
        str(item)
        for item in items
        if isinstance(item, str) and item.lower().startswith(("https://", "http://"))
    ]
