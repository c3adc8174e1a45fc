"""Recognising input images by their bytes, never by a name or a declared type."""

from __future__ import annotations

MAX_IMAGE_BYTES = 10 * 1024 * 1024  # Kie's limit for image_urls


def sniff_image_type(data: bytes) -> str | None:
    """The MIME type of a JPEG, PNG or WebP image, from its magic bytes; None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
