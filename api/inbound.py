"""What every upstream's callback route shares: a body read to a limit, never past it (a
hostile sender cannot make the API hold more than MAX_CALLBACK_BYTES of it)."""

from __future__ import annotations

from fastapi import Request

from api.errors import PayloadTooLarge

MAX_CALLBACK_BYTES = 64 * 1024


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"a callback body is at most {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"a callback body is at most {limit} bytes")
    return bytes(body)
