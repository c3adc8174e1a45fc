"""Test settings are fixed before soraq is imported: its settings and Celery app load once."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_VAR = Path(tempfile.mkdtemp(prefix="soraq-test-"))
os.environ.update(
    ENVIRONMENT="development",
    VAR_DIR=str(_VAR),
    DATABASE_URL=f"sqlite:///{_VAR / 'unit.db'}",
    CELERY_BROKER_URL="",
    KIE_API_KEY="test-kie-key",
    KIE_BASE_URL="https://kie.test",
    IMGBB_API_KEY="test-imgbb-key",
    IMGBB_BASE_URL="https://imgbb.test",
    PUBLIC_URL="",
    ADMIN_TOKEN="test-admin-token",
    METRICS_CACHE_SECONDS="0",
)
for name in ("MODEL_CATALOGUE", "KIE_WEBHOOK_HMAC_KEY"):
    os.environ.pop(name, None)
