"""The HTTP API: FastAPI app, routes, request/response schemas and the service they call."""
