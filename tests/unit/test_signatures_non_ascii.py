"""Signatures compared with what a request carries never turn odd characters into a 500
(hmac.compare_digest raises on a str with non-ASCII characters): the fuzzer found one."""

from __future__ import annotations

import time

from media import links


def test_a_content_link_with_a_non_ascii_signature_is_simply_invalid() -> None:
    expires = int(time.time()) + 60
    assert links.valid("job_1", "content", 0, expires, "\u00f0") is False
    assert links.valid("job_1", "content", 0, expires, "\udcff") is False
