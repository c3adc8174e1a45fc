"""The Celery worker: thin tasks over the pipeline (upload, submit, watch, archive, adopt),
admission, the account and credits guards, webhook delivery. May import views/, upstreams/,
models/, media/, catalogue/, broker/ and core/ — never api/."""
