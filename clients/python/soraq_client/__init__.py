"""A typed client for soraq (httpx and pydantic only).

from soraq_client import Soraq
client = Soraq("http://127.0.0.1:8000", api_key)
job = client.jobs.create(prompt="A kite over the sea", wait=30)
if not job.done:
    job = client.jobs.wait(job.id)
print(job.video_url)
"""

from soraq_client._client import AsyncSoraq, Soraq
from soraq_client._errors import SoraqError, WebhookVerificationError
from soraq_client._sse import EventParser
from soraq_client._webhooks import verify_webhook
from soraq_client.types import Batch, Event, Job, JobPage, Model

__all__ = [
    "AsyncSoraq",
    "Batch",
    "Event",
    "EventParser",
    "Job",
    "JobPage",
    "Model",
    "Soraq",
    "SoraqError",
    "WebhookVerificationError",
    "verify_webhook",
]
