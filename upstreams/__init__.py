"""The outbound side: one adapter per upstream API family (Kie's jobs, Veo and Runway APIs;
fal.ai's queue API) behind one interface (upstreams.base), imgbb, the HTTP client they share
and the error every failed call maps to. May import catalogue/ and core/."""

from __future__ import annotations

import httpx

from upstreams.base import TaskInfo, Upstream
from upstreams.fal_queue import ACCOUNT_CODES as FAL_ACCOUNT_CODES
from upstreams.kie_http import ACCOUNT_CODES as KIE_ACCOUNT_CODES
from upstreams.kie_http import KieHTTP
from upstreams.kie_jobs import KieJobs
from upstreams.kie_runway import KieRunway
from upstreams.kie_veo import KieVeo

# Facts about an account, not a job, whichever provider said them (worker.account).
ACCOUNT_CODES = KIE_ACCOUNT_CODES | FAL_ACCOUNT_CODES
# An account's rate limit: it pauses the account's admission, never fails a job.
RATE_LIMITED = frozenset({"kie_rate_limited", "fal_rate_limited"})

__all__ = ["ACCOUNT_CODES", "RATE_LIMITED", "KieHTTP", "TaskInfo", "Upstream", "kie_upstreams"]


def kie_upstreams(
    base_url: str,
    api_key: str,
    *,
    timeout: float,
    transport: httpx.BaseTransport | None = None,
    http: KieHTTP | None = None,
) -> dict[str, Upstream]:
    """Every Kie family, sharing one connection pool (one host, one key)."""
    http = http or KieHTTP(base_url, api_key, timeout=timeout, transport=transport)
    families: list[Upstream] = [KieJobs(http), KieVeo(http), KieRunway(http)]
    return {family.name: family for family in families}
