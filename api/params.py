"""What several routers share: the job id path parameter and the documented error answers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from api.schemas import ErrorBody

JobId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^job_[0-9a-f]{24}$")]

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 402, 404, 409, 413, 415, 422, 429, 503)
}
