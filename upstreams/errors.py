from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


class ExternalError(Exception):
    """A call to Kie or imgbb that did not succeed, mapped to a stable `error.code`.

    `retryable`: worth trying again later. `maybe_sent`: the service may have acted on the
    request (no definite answer came back) — for createTask that means a task may exist.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool,
        maybe_sent: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.maybe_sent = maybe_sent
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def from_transport_error(service: str, exc: Exception) -> ExternalError:
    """Map an httpx transport failure. Only a failure to connect proves nothing was sent."""
    import httpx

    not_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "unreachable"
    return ExternalError(
        f"{service}_{kind}",
        f"{service} did not answer: {type(exc).__name__}",
        retryable=True,
        maybe_sent=not not_sent,
    )
