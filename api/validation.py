"""Everything `POST /jobs` checks before a row is written, in one place: text fields (control
characters, metadata size and depth), images (by role, bytes sniffed, URLs public), the
model's own fields (its JSON Schema, catalogue/), the operator's prompt cap, the webhook URL,
and the request's fingerprint for Idempotency-Key. Each failure is an InvalidRequest naming
the field a person can fix."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread

from api.schemas import JobCreate
from catalogue import ModelSpec, get_catalogue
from core.config import Settings
from core.errors import InvalidRequest
from core.images import MAX_IMAGE_BYTES, sniff_image_type
from core.netguard import UnsafeURL, resolve

MAX_METADATA_BYTES = 8 * 1024
MAX_METADATA_DEPTH = 8
# Control characters other than tab and newline: never meaningful in a prompt or a URL, and
# a NUL is refused by PostgreSQL's text search (a 503 a client would retry forever).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.IGNORECASE)


@dataclass(frozen=True)
class ImageBytes:
    data: bytes
    content_type: str


@dataclass(frozen=True)
class ImageSource:
    """One input image as the request gave it: a URL, or bytes to upload."""

    role: str
    field: str  # the request field that carried it, for errors a person can act on
    url: str | None = None
    upload: ImageBytes | None = None


MAX_IMAGES = 12


def check_image(data: bytes, field: str, declared: str | None = None) -> ImageBytes:
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidRequest(
            field, f"image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES} (10 MB)"
        )
    content_type = sniff_image_type(data)
    if content_type is None:
        raise InvalidRequest(field, "not a JPEG, PNG or WebP image")
    if declared and declared.lower() not in (
        content_type,
        "image/jpg" if content_type == "image/jpeg" else "",
    ):
        raise InvalidRequest(field, f"declared as {declared} but the bytes are {content_type}")
    return ImageBytes(data, content_type)


def decode_base64_image(value: str, field: str = "image_base64") -> ImageBytes:
    declared = None
    if value.startswith("data:"):
        match = _DATA_URL.match(value)
        if match is None:
            raise InvalidRequest(field, "a data URL must look like data:image/png;base64,...")
        declared = match.group("mime")
        value = value[match.end() :]
    # Base64 is 4/3 the size of the bytes: refuse an oversized image before decoding it.
    if len(value) > MAX_IMAGE_BYTES * 4 // 3 + 1024:
        raise InvalidRequest(
            field, f"image is larger than the limit of {MAX_IMAGE_BYTES} bytes (10 MB)"
        )
    try:
        data = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(field, "not valid base64") from None
    return check_image(data, field, declared)


def check_image_url(url: str, field: str = "image_url") -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise InvalidRequest(field, "must be an https:// URL that Kie can fetch")
    host = parts.hostname.rstrip(".")  # "localhost." is localhost
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if (
        host == "localhost"
        or host.endswith(".localhost")
        or (address is not None and not address.is_global)
    ):
        raise InvalidRequest(field, "must point at a public host, not a private or local address")
    return url


def collect_images(
    request: JobCreate, uploads: list[tuple[str, str, ImageBytes]]
) -> list[ImageSource]:
    """Every image of a request, in order: the first frame (image_url, image_base64 or the
    multipart `image` part), then `images`, then multipart `image_<role>` parts."""
    sources: list[ImageSource] = []
    first_parts = [(r, name, img) for r, name, img in uploads if name == "image"]
    given = [request.image_url, request.image_base64, *first_parts]
    if sum(1 for g in given if g) > 1:
        raise InvalidRequest("image", "give one first image: image_url, image_base64 or a file")
    if request.image_url:
        sources.append(ImageSource("first_frame", "image_url", url=request.image_url))
    if request.image_base64:
        upload = decode_base64_image(request.image_base64)
        sources.append(ImageSource("first_frame", "image_base64", upload=upload))
    sources += [ImageSource(r, name, upload=img) for r, name, img in first_parts]
    for n, image in enumerate(request.images or []):
        field = f"images.{n}"
        if (image.url is None) == (image.base64 is None):
            raise InvalidRequest(field, "give exactly one of url or base64")
        if image.url is not None:
            sources.append(ImageSource(image.role, f"{field}.url", url=image.url))
        else:
            assert image.base64 is not None
            upload = decode_base64_image(image.base64, f"{field}.base64")
            sources.append(ImageSource(image.role, f"{field}.base64", upload=upload))
    sources += [
        ImageSource(role, name, upload=img) for role, name, img in uploads if name != "image"
    ]
    if len(sources) > MAX_IMAGES:
        raise InvalidRequest("images", f"at most {MAX_IMAGES} images per job")
    return sources


def check_images_for(spec: ModelSpec, sources: list[ImageSource]) -> None:
    spec.check_images(source.role for source in sources)
    for source in sources:
        if source.url is not None:
            check_image_url(source.url, source.field)
        elif source.upload is not None:
            upload = source.upload
            if upload.content_type not in spec.image_types:
                allowed = ", ".join(t.split("/")[1] for t in spec.image_types)
                raise InvalidRequest(
                    source.field,
                    f"model {spec.id} takes {allowed} images; this one is {upload.content_type}",
                )
            if len(upload.data) > spec.image_max_bytes:
                raise InvalidRequest(
                    source.field,
                    f"image is {len(upload.data)} bytes; model {spec.id} takes at most "
                    f"{spec.image_max_bytes}",
                )


def check_text(request: JobCreate) -> None:
    """Every text field of a request, the model's own and the metadata's included."""
    fields: list[tuple[str, object]] = [
        ("prompt", request.prompt),
        ("model", request.model),
        ("image_url", request.image_url),
        ("webhook_url", request.webhook_url),
        *((f"images.{n}.url", image.url) for n, image in enumerate(request.images or [])),
        *((name, value) for name, value in (request.model_extra or {}).items()),
        ("metadata", request.metadata),
    ]
    for name, value in fields:
        if _has_control(value):
            raise InvalidRequest(
                name, "must not contain control characters (other than tab and newline)"
            )
    if request.metadata is not None:
        if _depth(request.metadata) > MAX_METADATA_DEPTH:
            raise InvalidRequest("metadata", f"must nest at most {MAX_METADATA_DEPTH} levels")
        if len(json.dumps(request.metadata)) > MAX_METADATA_BYTES:
            raise InvalidRequest("metadata", f"must be at most {MAX_METADATA_BYTES} bytes as JSON")


def _has_control(value: object) -> bool:
    """Walks nested values without recursion: a deep structure cannot exhaust the stack."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _CONTROL.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _depth(value: object) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def request_fingerprint(request: JobCreate, uploads: list[tuple[str, str, ImageBytes]]) -> str:
    """What makes two requests "the same body" for Idempotency-Key purposes."""
    digest = hashlib.sha256(request.model_dump_json(exclude_none=True).encode())
    for role, name, upload in uploads:
        digest.update(f"{role}:{name}:".encode())
        digest.update(hashlib.sha256(upload.data).digest())
    return digest.hexdigest()


async def check_public_url(url: str, field: str, settings: Settings) -> None:
    """An input image's URL must resolve to public addresses only — the same guard as
    webhooks: `https://2130706433/`, `https://0x7f.1/` and `localhost.` are loopback."""
    try:
        await anyio.to_thread.run_sync(
            lambda: resolve(url, allow_http=False, allowed=settings.allowed_networks)
        )
    except UnsafeURL as exc:
        raise InvalidRequest(field, str(exc)) from None


async def check_webhook_url(url: str, settings: Settings) -> str:
    try:
        await anyio.to_thread.run_sync(
            lambda: resolve(
                url, allow_http=settings.webhook_allow_http, allowed=settings.allowed_networks
            )
        )
    except UnsafeURL as exc:
        raise InvalidRequest("webhook_url", str(exc)) from None
    return url


@dataclass(frozen=True)
class ValidRequest:
    """A request that passed every check: its model, params (defaults filled), images,
    estimate in credits and vetted webhook URL."""

    request: JobCreate
    spec: ModelSpec
    params: dict[str, Any]
    sources: list[ImageSource]
    estimate: float
    webhook_url: str | None

    def stored_images(
        self,
    ) -> tuple[list[dict[str, Any]], dict[str, Any], list[tuple[int, ImageSource]]]:
        """(the job's `images`, its shown `input`, the uploads to store as job_images): a URL
        is kept as given; bytes wait for imgbb under their position."""
        images: list[dict[str, Any]] = []
        shown_images: list[dict[str, Any]] = []
        to_upload: list[tuple[int, ImageSource]] = []
        for position, source in enumerate(self.sources):
            if source.url is not None:
                images.append({"role": source.role, "url": source.url})
                shown_images.append({"role": source.role, "url": source.url})
            else:
                assert source.upload is not None
                images.append({"role": source.role, "upload": position})
                shown_images.append(
                    {
                        "role": source.role,
                        "content_type": source.upload.content_type,
                        "bytes": len(source.upload.data),
                    }
                )
                to_upload.append((position, source))
        shown: dict[str, Any] = {"prompt": self.request.prompt, **self.params}
        if shown_images:
            shown["images"] = shown_images
        return images, shown, to_upload


async def validate_request(
    request: JobCreate, uploads: list[tuple[str, str, ImageBytes]], settings: Settings
) -> ValidRequest:
    check_text(request)
    sources = collect_images(request, uploads)
    catalogue = get_catalogue()
    spec = catalogue.get(request.model or catalogue.default_model(has_image=bool(sources)))
    params = spec.validate(request.model_fields_given())
    if len(request.prompt) > settings.prompt_max_length:  # the operator's cap over every model
        raise InvalidRequest(
            "prompt",
            f"is {len(request.prompt)} characters; this service takes at most "
            f"{settings.prompt_max_length}",
        )
    check_images_for(spec, sources)
    for source in sources:
        if source.url is not None:
            await check_public_url(source.url, source.field, settings)
    webhook_url = (
        await check_webhook_url(request.webhook_url, settings) if request.webhook_url else None
    )
    return ValidRequest(request, spec, params, sources, spec.estimate(params), webhook_url)
