"""Database models, engine/session setup, the job state machine and the queries beside them."""

from models.base import Base
from models.job import Job, JobImage, JobStatus

__all__ = ["Base", "Job", "JobImage", "JobStatus"]
