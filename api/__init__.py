"""The HTTP API: the FastAPI app, thin routes, request schemas, and the services that own what
a request may do (validation, budgets, usage, the admin side). May import views/, upstreams/,
models/, media/, catalogue/, broker/ and core/ — never worker/."""
