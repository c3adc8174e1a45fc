"""The Celery app the API publishes to and the worker consumes, and the embedded broker's
file transport. May import core/ only."""
