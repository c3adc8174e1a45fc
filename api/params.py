"""What several routers share: the job id path parameter and the documented error answers."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import BeforeValidator

from api.schemas import ErrorBody

JobId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^job_[0-9a-f]{24}$")]

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 402, 404, 409, 413, 415, 422, 429, 503)
}


_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"
)


def iso_day(value: object) -> object:
    """A `format: date` query value must be written as one: pydantic would also read `0` as
    1970-01-01 (a Unix time)."""
    if isinstance(value, str) and not _ISO_DAY.match(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    return value


def iso_time(value: object) -> object:
    """A `format: date-time` query value must be ISO 8601, not a Unix time."""
    if isinstance(value, str) and not _ISO_TIME.match(value):
        raise ValueError("must be an ISO 8601 date-time (YYYY-MM-DDTHH:MM:SSZ)")
    return value


IsoDay = Annotated[date, BeforeValidator(iso_day)]
IsoTime = Annotated[datetime, BeforeValidator(iso_time)]
