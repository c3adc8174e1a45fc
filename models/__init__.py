"""The database: tables, engine and sessions, the job state machine, the queries beside the
models, the spend counters and migrations' runner. May import catalogue/ and core/."""

from models.admin import AdminAuthFailures, AdminSession
from models.base import Base
from models.batch import Batch
from models.client import Client
from models.event import JobEvent
from models.idempotency import IdempotencyKey
from models.job import Job, JobImage, JobStatus
from models.model_state import CatalogueReport, ModelState
from models.scheduler import SchedulerState
from models.spend import ClientSpend
from models.webhook import DeliveryState, WebhookDelivery, WebhookHostSlot

__all__ = [
    "AdminAuthFailures",
    "AdminSession",
    "Base",
    "Batch",
    "CatalogueReport",
    "Client",
    "ClientSpend",
    "DeliveryState",
    "IdempotencyKey",
    "JobEvent",
    "Job",
    "JobImage",
    "JobStatus",
    "ModelState",
    "SchedulerState",
    "WebhookDelivery",
    "WebhookHostSlot",
]
