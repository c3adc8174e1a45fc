"""The Celery worker: tasks, the pipeline they run, and the Kie and imgbb clients."""
