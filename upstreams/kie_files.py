"""Kie's File Upload API: videos and audio files soraq holds (uploaded by a client, or an
earlier job's result) reach Kie through it, by stream upload (multipart), when the job is
submitted — Kie keeps such files for days, not for ever.

`POST /api/file-stream-upload` (`file`, `uploadPath`, `fileName`) → `{"success", "code",
"msg", "data": {"downloadUrl", …}}`; some pages show `fileUrl`. The envelope's `code` decides,
as everywhere at Kie."""

from __future__ import annotations

import httpx

from upstreams.errors import ExternalError
from upstreams.kie_http import KieHTTP

UPLOAD_PATH = "soraq"


class KieFileUpload:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = KieHTTP(base_url, api_key, timeout=timeout, transport=transport)

    def upload(self, data: bytes, *, name: str, content_type: str) -> str:
        """Upload a file; its public URL on Kie's file host. Its name carries the extension
        of its real format: Kie's host serves a file with the type its name says."""
        answer = self._http.call(
            "POST",
            "/api/file-stream-upload",
            data={"uploadPath": UPLOAD_PATH, "fileName": name},
            files={"file": (name, data, content_type)},
        )
        url = (answer or {}).get("downloadUrl") or (answer or {}).get("fileUrl")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise ExternalError(
                "kie_upload_bad_answer",
                "Kie's file upload answered without a file URL",
                retryable=True,
            )
        return url[:2048]
