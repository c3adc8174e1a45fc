"""The opaque cursor both job listings hand out: a job's (created_at, id), base64url JSON.
Keyset pagination stays correct while new jobs arrive."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from core.errors import InvalidRequest
from models.job import Job


def encode_cursor(job: Job) -> str:
    raw = json.dumps([job.created_at.isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        return datetime.fromisoformat(created_at), str(job_id)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidRequest("cursor", "is not a cursor this API gave out") from None
