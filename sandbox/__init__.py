"""A real HTTP stand-in for Kie.ai's jobs API and imgbb: tests, benchmarks and `make run` use it."""
