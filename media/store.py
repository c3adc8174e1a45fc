"""Where archived videos live: one maintained object-store library (obstore) for local files
(`file://…`, the embedded default) and S3-compatible stores (`s3://bucket/prefix`, with
S3_ENDPOINT_URL, S3_REGION and the usual AWS_* credentials). Writes are atomic — no reader
ever sees a partial object — and keys are content-addressed, so an archive step repeated after
a crash writes the same object again, harmlessly."""

from __future__ import annotations

import os
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import obstore
import obstore.exceptions
from obstore.store import LocalStore, ObjectStore, S3Store

from core import tracing
from core.config import Settings, get_settings


def storage_url(settings: Settings) -> str:
    return settings.storage_url or f"file://{(Path(settings.var_dir) / 'media').resolve()}"


def make_store(settings: Settings) -> ObjectStore:
    url = storage_url(settings)
    if url.startswith("file://"):
        folder = Path(url.removeprefix("file://"))
        folder.mkdir(parents=True, exist_ok=True)
        return LocalStore(prefix=folder)
    if url.startswith("s3://"):
        options: dict[str, Any] = {}
        if settings.s3_endpoint_url:
            options["endpoint"] = settings.s3_endpoint_url
        if settings.s3_region:
            options["region"] = settings.s3_region
        client: dict[str, Any] = {"timeout": "60s", "connect_timeout": "10s"}
        if (settings.s3_endpoint_url or "").startswith("http://"):
            client["allow_http"] = True
        # Few, short retries: an outage is waited out by the job's own schedule (it stays
        # `archiving`), not by a worker thread blocked for minutes.
        retry = {
            "max_retries": 2,
            "retry_timeout": timedelta(seconds=10),
            "backoff": {
                "init_backoff": timedelta(milliseconds=100),
                "max_backoff": timedelta(seconds=2),
                "base": 2,
            },
        }
        return S3Store.from_url(
            url,
            client_options=client,  # type: ignore[arg-type]
            retry_config=retry,  # type: ignore[arg-type]
            **options,
        )
    raise ValueError(f"STORAGE_URL must be file://… or s3://…, not {url!r}")


@cache
def store() -> ObjectStore:
    """One store (and connection pool) per process."""
    return make_store(get_settings())


def is_local(settings: Settings) -> bool:
    return storage_url(settings).startswith("file://")


def local_path(settings: Settings, key: str) -> Path:
    return Path(storage_url(settings).removeprefix("file://")) / key


def _attributes(content_type: str) -> dict[str, Any] | None:
    # A file store keeps no attributes (soraq records the type itself); S3 serves it back.
    return None if isinstance(store(), LocalStore) else {"Content-Type": content_type}


# Parts of 5 MB (S3's smallest), two at a time: archiving a 2 GB file holds ~15 MB of
# buffers, where obstore's defaults (12 parts at once) held over 60 MB.
PART_BYTES, PARTS_AT_ONCE = 5 * 1024 * 1024, 2


def scratch_folder(settings: Settings) -> Path | None:
    """Where a download should land: inside a file store (so that storing it is a rename, not
    a second copy), or None (the system's temporary folder) for S3."""
    if not is_local(settings):
        return None
    folder = local_path(settings, ".incoming")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def put_file(key: str, path: Path, content_type: str) -> None:
    # obstore speaks to S3 from Rust, out of httpx's instrumentation: its calls get spans here.
    with tracing.span("storage.put", **{"soraq.storage_key": key}):
        _put_file(key, path, content_type)


def _put_file(key: str, path: Path, content_type: str) -> None:
    settings = get_settings()
    if is_local(settings) and path.is_relative_to(local_path(settings, ".incoming")):
        target = local_path(settings, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)  # atomic on one filesystem: readers see all of it or nothing
        return
    obstore.put(
        store(),
        key,
        path,
        attributes=_attributes(content_type),
        chunk_size=PART_BYTES,
        max_concurrency=PARTS_AT_ONCE,
    )


def put_bytes(key: str, data: bytes, content_type: str) -> None:
    with tracing.span("storage.put", **{"soraq.storage_key": key}):
        obstore.put(store(), key, data, attributes=_attributes(content_type))


StorageError = obstore.exceptions.BaseError  # the store could not be reached or refused


def exists(key: str) -> bool:
    try:
        obstore.head(store(), key)
    except (FileNotFoundError, obstore.exceptions.NotFoundError):
        return False
    return True


def delete(key: str) -> None:
    try:
        with tracing.span("storage.delete", **{"soraq.storage_key": key}):
            obstore.delete(store(), key)
    except (FileNotFoundError, obstore.exceptions.NotFoundError):
        pass


def presigned_get(key: str, ttl: timedelta) -> str:
    signing = store()
    assert isinstance(signing, S3Store), "only S3-compatible stores sign URLs"
    return obstore.sign(signing, "GET", key, ttl)


def get_bytes(key: str) -> bytes:
    """A stored object's bytes (FileNotFoundError when it is gone)."""
    try:
        return bytes(obstore.get(store(), key).bytes())
    except obstore.exceptions.NotFoundError:
        raise FileNotFoundError(key) from None
