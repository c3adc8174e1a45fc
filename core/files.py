"""Recognising input files by their bytes, never by a name or a declared type: images (JPEG,
PNG, WebP), videos (MP4, QuickTime, WebM, Matroska) and audio (MP3, WAV, AAC, M4A, Ogg, FLAC).
How long a video or an audio file lasts is read by media.probe (PyAV), not here."""

from __future__ import annotations

from core.images import sniff_image_type

# ISO base media "brands" (bytes 8–12 of an `ftyp` box) that are audio-only containers.
_AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"F4A ")


def sniff(data: bytes) -> tuple[str, str] | None:
    """(kind, content type) of a file from its first bytes: kind is image, video or audio;
    None for anything soraq does not take."""
    image = sniff_image_type(data)
    if image is not None:
        return "image", image
    head = data[:16]
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _AUDIO_BRANDS:
            return "audio", "audio/mp4"
        if brand == b"qt  ":
            return "video", "video/quicktime"
        return "video", "video/mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: WebM or Matroska
        return "video", "video/webm" if b"webm" in data[:64] else "video/x-matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio", "audio/wav"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return "audio", "audio/mpeg"  # an ID3 tag, or an MPEG audio layer III frame header
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "audio", "audio/aac"  # an ADTS frame header
    if head[:4] == b"OggS":
        return "audio", "audio/ogg"
    if head[:4] == b"fLaC":
        return "audio", "audio/flac"
    return None


# The names a file of each content type goes by when it is uploaded (Kie's upload host
# serves a file with the type its name says: the name must match the bytes).
EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "video/x-matroska": "mkv",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/aac": "aac",
    "audio/mp4": "m4a",
    "audio/ogg": "ogg",
    "audio/flac": "flac",
}
