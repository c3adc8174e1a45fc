"""fal.ai's webhook signatures: Ed25519 over `request_id \\n user_id \\n timestamp \\n
sha256(body)` (hex), sent in `X-Fal-Webhook-Request-Id`, `-User-Id`, `-Timestamp` and
`-Signature`, checked against the public keys fal publishes as a JWKS (FAL_JWKS_URL).

The keys are read once and kept for a day (a key fal rotates in is read at the first
signature the cached keys do not verify, at most once a minute); reading them has a deadline
and a size limit. A webhook is only ever a hint to read the task: the sweep polls anyway.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from upstreams.http import make_client

TOLERANCE = 300  # seconds either way: an older signature is a replay
KEYS_TTL = 24 * 3600
REFRESH_AT_MOST = 60  # seconds between reads forced by an unknown signature
MAX_JWKS_BYTES = 64 * 1024


class KeysUnavailable(Exception):
    """fal's public keys could not be read: the webhook can be neither trusted nor refused."""


@dataclass
class FalKeys:
    url: str
    timeout: float = 10.0
    keys: list[Ed25519PublicKey] = field(default_factory=list)
    read_at: float = 0.0
    failed_at: float = -REFRESH_AT_MOST  # a failed read is not tried again sooner than this
    # Webhooks arrive in threads: one read at a time, the others use what it found.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _read(self) -> None:
        with self.lock:
            if time.monotonic() - self.failed_at < REFRESH_AT_MOST:
                raise KeysUnavailable("fal's keys could not be read a moment ago")
            try:
                self._fetch()
            except KeysUnavailable:
                self.failed_at = time.monotonic()
                raise

    def _fetch(self) -> None:
        try:
            with (
                make_client("", timeout=self.timeout) as http,
                http.stream("GET", self.url) as response,
            ):
                if not response.is_success:
                    raise KeysUnavailable(f"HTTP {response.status_code}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:  # never held past the limit
                        raise KeysUnavailable(f"fal's JWKS is over {MAX_JWKS_BYTES} bytes")
            found = json.loads(body).get("keys") or []
        except (httpx.HTTPError, ValueError, AttributeError, RecursionError) as exc:
            raise KeysUnavailable(type(exc).__name__) from exc
        keys = []
        for jwk in found[:20] if isinstance(found, list) else []:
            if not isinstance(jwk, dict) or jwk.get("crv") != "Ed25519":
                continue
            try:
                raw = base64.urlsafe_b64decode(str(jwk.get("x", "")) + "==")
                keys.append(Ed25519PublicKey.from_public_bytes(raw))
            except (ValueError, binascii.Error):
                continue
        if not keys:
            raise KeysUnavailable("no Ed25519 key in fal's JWKS")
        self.keys, self.read_at = keys, time.monotonic()

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        """Whether fal signed this webhook (fresh, for this body). Raises KeysUnavailable."""
        request_id = headers.get("x-fal-webhook-request-id", "")
        user_id = headers.get("x-fal-webhook-user-id", "")
        stamp = headers.get("x-fal-webhook-timestamp", "")
        try:
            signature = bytes.fromhex(headers.get("x-fal-webhook-signature", ""))
        except ValueError:
            return False
        if not (request_id and user_id and stamp.isdigit() and signature):
            return False
        if abs(time.time() - int(stamp)) > TOLERANCE:
            return False
        digest = hashlib.sha256(body).hexdigest()
        message = "\n".join([request_id, user_id, stamp, digest]).encode()
        age = time.monotonic() - self.read_at
        if not self.keys or age > KEYS_TTL:
            self._read()
        if self._any_verifies(signature, message):
            return True
        if age > REFRESH_AT_MOST:  # perhaps a key fal rotated in since we read them
            self._read()
            return self._any_verifies(signature, message)
        return False

    def _any_verifies(self, signature: bytes, message: bytes) -> bool:
        for key in self.keys:
            try:
                key.verify(signature, message)
                return True
            except InvalidSignature:
                continue
        return False


_keys: dict[str, FalKeys] = {}


def keys_at(url: str) -> FalKeys:
    """One key set per JWKS URL and process."""
    if url not in _keys:
        _keys[url] = FalKeys(url)
    return _keys[url]
