"""Everything `POST /jobs` checks before a row is written, in one place: text fields (control
characters, metadata size and depth), inputs (images, videos, audio and earlier jobs, by role:
bytes sniffed for their kind, durations read, URLs public), the model's own fields (its JSON
Schema, catalogue/), the operator's prompt cap, the webhook URL, and the request's
fingerprint for Idempotency-Key. Each failure is an InvalidRequest naming the field a person
can fix."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from api.account_routes import fal_refusal_of, pinned_route, served_by_fal
from api.errors import NotFound
from api.model_states import STATES
from api.schemas import JobCreate
from catalogue import ModelSpec, get_catalogue
from core.config import Settings
from core.errors import InvalidRequest
from core.files import sniff
from core.images import MAX_IMAGE_BYTES, sniff_image_type
from core.netguard import UnsafeURL, resolve
from media.probe import NotMedia, input_seconds
from models.base import utcnow
from models.job import JobStatus
from models.job_queries import jobs_of_client

MAX_METADATA_BYTES = 8 * 1024
MAX_METADATA_DEPTH = 8
# Control characters other than tab and newline: never meaningful in a prompt or a URL, and
# a NUL is refused by PostgreSQL's text search (a 503 a client would retry forever).
# Unicode's bidirectional overrides and isolates (text that reads one way and shows another)
# and its line and paragraph separators are refused the same way.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.IGNORECASE)


@dataclass(frozen=True)
class ImageBytes:
    """An input file's bytes, recognised by their content: an image, a video or audio."""

    data: bytes
    content_type: str
    kind: str = "image"
    seconds: float | None = None  # a video's or an audio file's duration, when read


FileBytes = ImageBytes


@dataclass(frozen=True)
class ImageSource:
    """One input as the request gave it: a URL, bytes to upload, or an earlier job of the same
    client (its archived result, or its upstream task)."""

    role: str
    field: str  # the request field that carried it, for errors a person can act on
    url: str | None = None
    upload: ImageBytes | None = None
    job: str | None = None
    index: int = 0


InputSource = ImageSource

MAX_IMAGES = 12
MAX_INPUTS = 20  # every input of one job together, images included
MAX_INPUT_BYTES = 16 * 1024 * 1024  # an uploaded file (the request body's own limit too)


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


def decode_base64_file(value: str, field: str, max_bytes: int) -> ImageBytes:
    """Base64 (raw or a data: URL) of any input file; its kind comes from its bytes."""
    if value.startswith("data:"):
        match = _DATA_URL.match(value)
        if match is None:
            raise InvalidRequest(field, "a data URL must look like data:video/mp4;base64,...")
        value = value[match.end() :]
    if len(value) > max_bytes * 4 // 3 + 1024:
        raise InvalidRequest(field, f"the file is larger than the limit of {max_bytes} bytes")
    try:
        data = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(field, "not valid base64") from None
    return sniff_file(data, field)


def sniff_file(data: bytes, field: str) -> ImageBytes:
    found = sniff(data)
    if found is None:
        raise InvalidRequest(
            field,
            "not a file soraq takes: images (jpeg/png/webp), videos (mp4/mov/webm) or "
            "audio (mp3/wav/aac/m4a/ogg/flac)",
        )
    kind, content_type = found
    return ImageBytes(data, content_type, kind)


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
    for n, item in enumerate(request.inputs or []):
        field = f"inputs[{n}]"
        given = [g for g in (item.url, item.base64, item.job) if g is not None]
        if len(given) != 1:
            raise InvalidRequest(field, "give exactly one of url, base64 or job")
        if item.url is not None:
            sources.append(ImageSource(item.role, field, url=item.url))
        elif item.job is not None:
            sources.append(ImageSource(item.role, field, job=item.job, index=item.index or 0))
        else:
            assert item.base64 is not None
            upload = decode_base64_file(item.base64, field, MAX_INPUT_BYTES)
            sources.append(ImageSource(item.role, field, upload=upload))
    sources += [
        ImageSource(role, name, upload=img) for role, name, img in uploads if name != "image"
    ]
    if len(sources) > MAX_INPUTS:
        raise InvalidRequest("inputs", f"at most {MAX_INPUTS} inputs per job")
    if sum(1 for s in sources if s.upload is not None and s.upload.kind == "image") > MAX_IMAGES:
        raise InvalidRequest("images", f"at most {MAX_IMAGES} images per job")
    return sources


def check_images_for(spec: ModelSpec, sources: list[ImageSource]) -> None:
    """Each input against its role: the kind its bytes are, their type, size and duration; a
    URL must be https on a public host; a task role takes an earlier job only."""
    field = "inputs" if any(s.field.startswith("inputs") for s in sources) else "images"
    spec.check_inputs((source.role for source in sources), field=field)
    for source in sources:
        role = spec.roles[source.role]
        noun = "image" if role.kind == "image" else role.kind
        if role.kind == "task":
            if source.job is None:
                raise InvalidRequest(
                    source.field,
                    f'the {source.role} role takes an earlier job: {{"role": '
                    f'"{source.role}", "job": "job_…"}}',
                )
            continue
        if source.url is not None:
            check_image_url(source.url, source.field)
        elif source.upload is not None:
            upload = source.upload
            if upload.kind != role.kind:
                raise InvalidRequest(
                    source.field,
                    f"is {'an' if upload.kind[0] in 'aeiou' else 'a'} {upload.kind} "
                    f"({upload.content_type}); the {source.role} role of model {spec.id} takes "
                    f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}",
                )
            if upload.content_type not in role.types:
                allowed = ", ".join(t.split("/")[1] for t in role.types)
                raise InvalidRequest(
                    source.field,
                    f"model {spec.id} takes {allowed} {noun}s; this one is {upload.content_type}",
                )
            if len(upload.data) > role.max_bytes:
                raise InvalidRequest(
                    source.field,
                    f"{noun} is {len(upload.data)} bytes; model {spec.id} takes at most "
                    f"{role.max_bytes}",
                )
            _check_seconds(role, upload, source.field, spec.id)


def _check_seconds(role: Any, upload: ImageBytes, field: str, model_id: str) -> None:
    seconds = upload.seconds
    if seconds is None:
        return
    if role.max_seconds is not None and seconds > role.max_seconds:
        raise InvalidRequest(
            field, f"lasts {seconds:g} s; model {model_id} takes at most {role.max_seconds:g} s"
        )
    if role.min_seconds is not None and seconds < role.min_seconds:
        raise InvalidRequest(
            field, f"lasts {seconds:g} s; model {model_id} takes at least {role.min_seconds:g} s"
        )


async def read_durations(sources: list[ImageSource]) -> list[ImageSource]:
    """Each uploaded video's or audio file's duration, read from its headers (off the event
    loop); a file that does not open as what its first bytes claim is refused."""
    read: list[ImageSource] = []
    for source in sources:
        upload = source.upload
        if upload is None or upload.kind == "image":
            read.append(source)
            continue
        try:
            seconds = await anyio.to_thread.run_sync(input_seconds, upload.data, upload.kind)
        except NotMedia as exc:
            raise InvalidRequest(source.field, str(exc)) from None
        read.append(
            ImageSource(
                source.role,
                source.field,
                upload=ImageBytes(upload.data, upload.content_type, upload.kind, seconds),
            )
        )
    return read


def check_text(request: JobCreate) -> None:
    """Every text field of a request, the model's own and the metadata's included."""
    fields: list[tuple[str, object]] = [
        ("prompt", request.prompt),
        ("model", request.model),
        ("image_url", request.image_url),
        ("webhook_url", request.webhook_url),
        *((f"images.{n}.url", image.url) for n, image in enumerate(request.images or [])),
        *((f"inputs[{n}].url", item.url) for n, item in enumerate(request.inputs or [])),
        *((f"inputs[{n}].job", item.job) for n, item in enumerate(request.inputs or [])),
        *((name, value) for name, value in (request.model_extra or {}).items()),
        ("metadata", request.metadata),
    ]
    for name, value in fields:
        if _has_control(value):
            raise InvalidRequest(
                name,
                "must not contain control characters (other than tab and newline), "
                "bidirectional overrides or line/paragraph separators",
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
            lambda: resolve(url, allow_http=False, allowed=settings.client_networks)
        )
    except UnsafeURL as exc:
        raise InvalidRequest(field, str(exc)) from None


async def check_webhook_url(url: str, settings: Settings) -> str:
    try:
        await anyio.to_thread.run_sync(
            lambda: resolve(
                url, allow_http=settings.webhook_allow_http, allowed=settings.client_networks
            )
        )
    except UnsafeURL as exc:
        raise InvalidRequest("webhook_url", str(exc)) from None
    return url


@dataclass(frozen=True)
class ValidRequest:
    """A request that passed every check: its model, params (defaults filled), inputs,
    estimate in credits and vetted webhook URL."""

    request: JobCreate
    spec: ModelSpec
    params: dict[str, Any]
    sources: list[ImageSource]
    estimate: float
    webhook_url: str | None
    # Each earlier job an input names, as found (its task id and account for a task role).
    chained: dict[int, dict[str, Any]] = field(default_factory=dict)
    route: str | None = None  # the account the job is pinned to (api.account_routes)
    fal_refusal: str | None = None  # why fal cannot make it (catalogue/fal.toml), if it cannot

    def stored_images(
        self,
    ) -> tuple[list[dict[str, Any]], dict[str, Any], list[tuple[int, ImageSource]]]:
        """(the job's `images` — every input, by role —, its shown `input`, the uploads to
        store as job_images): a URL is kept as given; bytes wait for their upload under their
        position; an earlier job is kept by id (with its task id for a task role)."""
        images: list[dict[str, Any]] = []
        shown_inputs: list[dict[str, Any]] = []
        to_upload: list[tuple[int, ImageSource]] = []
        for position, source in enumerate(self.sources):
            kind = self.spec.roles[source.role].kind
            base: dict[str, Any] = {"role": source.role}
            if kind != "image":
                base["kind"] = kind
            if source.url is not None:
                images.append({**base, "url": source.url})
                shown_inputs.append({**base, "kind": kind, "url": source.url})
            elif source.job is not None:
                stored = {**base, "job": source.job, "index": source.index}
                stored.update(self.chained.get(position, {}))
                images.append(stored)
                shown_inputs.append(
                    {
                        **base,
                        "kind": kind,
                        "job": source.job,
                        "index": source.index,
                        "job_url": f"/jobs/{source.job}",
                    }
                )
            else:
                assert source.upload is not None
                images.append({**base, "upload": position})
                shown: dict[str, Any] = {
                    **base,
                    "kind": kind,
                    "content_type": source.upload.content_type,
                    "bytes": len(source.upload.data),
                }
                if source.upload.seconds is not None:
                    shown["seconds"] = source.upload.seconds
                shown_inputs.append(shown)
                to_upload.append((position, source))
        shown_input: dict[str, Any] = {"prompt": self.request.prompt or "", **self.params}
        if shown_inputs:
            # `images` as before inputs could be more than images; `inputs` has them all.
            shown_images = [
                {k: v for k, v in i.items() if k != "kind"}
                for i in shown_inputs
                if i["kind"] == "image" and "job" not in i
            ]
            if shown_images:
                shown_input["images"] = shown_images
            shown_input["inputs"] = shown_inputs
        return images, shown_input, to_upload


async def validate_request(
    request: JobCreate,
    uploads: list[tuple[str, str, ImageBytes]],
    settings: Settings,
    *,
    session: AsyncSession | None = None,
    client_id: str | None = None,
) -> ValidRequest:
    check_text(request)
    sources = collect_images(request, uploads)
    catalogue = get_catalogue()
    has_image = any(s.role in ("first_frame", "last_frame", "reference") for s in sources)
    spec = catalogue.get(request.model or catalogue.default_model(has_image=has_image))
    if session is not None:
        await STATES.refresh(session)
    params = spec.validate(request.model_fields_given())
    prompt = request.prompt or ""
    fal_refusal = fal_refusal_of(spec.id, prompt, params, {s.role for s in sources})
    if fal_refusal is not None or not served_by_fal(settings, spec.id):
        # fal does not follow Kie's pauses: a job fal can make is not refused for them.
        STATES.refuse_if_unavailable(catalogue, spec)  # paused or gone at Kie (its live catalogue)
    if len(prompt) > settings.prompt_max_length:  # the operator's cap over every model
        raise InvalidRequest(
            "prompt",
            f"is {len(prompt)} characters; this service takes at most {settings.prompt_max_length}",
        )
    sources = await read_durations(sources)
    check_images_for(spec, sources)
    for source in sources:
        if source.url is not None:
            await check_public_url(source.url, source.field, settings)
    chained: dict[int, dict[str, Any]] = {}
    if any(source.job is not None for source in sources):
        if session is None or client_id is None:
            raise InvalidRequest("inputs", "earlier jobs cannot be inputs here")
        chained = await chain_inputs(session, client_id, spec, sources, settings)
    webhook_url = (
        await check_webhook_url(request.webhook_url, settings) if request.webhook_url else None
    )
    estimate = STATES.estimate(spec, params)  # Kie's price when read, else the bundled
    continued = [entry["account"] for entry in chained.values() if entry.get("account")]
    route = pinned_route(request, spec, settings, continued, fal_refusal)
    return ValidRequest(
        request, spec, params, sources, estimate, webhook_url, chained, route, fal_refusal
    )


async def chain_inputs(
    session: AsyncSession,
    client_id: str,
    spec: ModelSpec,
    sources: list[ImageSource],
    settings: Settings,
) -> dict[int, dict[str, Any]]:
    """Each earlier job an input names: the client's own (another's is not found), finished
    with a result the role can use — for a task role its upstream task (the same API family,
    a model the role continues, within Kie's retention), for a file role its archived file."""
    wanted = sorted({s.job for s in sources if s.job is not None})
    found = {job.id: job for job in (await session.scalars(jobs_of_client(wanted, client_id)))}
    for earlier_job in found.values():
        session.expunge(earlier_job)
    await session.rollback()  # a read only: the insert may still go in one round trip
    chained: dict[int, dict[str, Any]] = {}
    now = utcnow()
    for position, source in enumerate(sources):
        if source.job is None:
            continue
        job = found.get(source.job)
        if job is None:
            raise NotFound(f"{source.field}.job: no job {source.job} of yours")
        role = spec.roles[source.role]
        if job.status != JobStatus.SUCCEEDED:
            raise InvalidRequest(
                f"{source.field}.job", f"job {job.id} is {job.status}, not succeeded"
            )
        earlier = get_catalogue().models.get(job.model)
        if role.kind == "task":
            if earlier is None or earlier.upstream != spec.upstream or not job.kie_task_id:
                raise InvalidRequest(
                    f"{source.field}.job",
                    f"job {job.id} ({job.model}) has no task of {spec.upstream} to continue",
                )
            if not role.continues(job.model):
                allowed = ", ".join(role.from_models)
                raise InvalidRequest(
                    f"{source.field}.job",
                    f"model {spec.id} continues tasks of {allowed}; job {job.id} is {job.model}",
                )
            ended = job.finished_at or job.updated_at
            if ended is not None and now - ended > timedelta(days=settings.kie_task_retention_days):
                raise InvalidRequest(
                    f"{source.field}.job",
                    f"job {job.id}'s task is older than Kie keeps tasks "
                    f"({settings.kie_task_retention_days:g} days)",
                )
            # The task exists at one account only: the new job must go there too.
            chained[position] = {"task_id": job.kie_task_id, "account": job.account}
            continue
        videos = (job.result or {}).get("videos") or []
        video = videos[source.index] if 0 <= source.index < len(videos) else None
        if video is None or not video.get("archived", True) or video.get("expired"):
            raise InvalidRequest(
                f"{source.field}.job",
                f"job {job.id} has no stored video at index {source.index} to send on",
            )
        if video.get("bytes") and video["bytes"] > role.max_bytes:
            raise InvalidRequest(
                f"{source.field}.job",
                f"job {job.id}'s video is {video['bytes']} bytes; model {spec.id} takes at "
                f"most {role.max_bytes}",
            )
        seconds = video.get("duration_s")
        if isinstance(seconds, int | float):
            upload = ImageBytes(b"", video.get("content_type") or "video/mp4", role.kind, seconds)
            _check_seconds(role, upload, f"{source.field}.job", spec.id)
    return chained
