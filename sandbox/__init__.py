"""A real HTTP stand-in for Kie.ai (its jobs, Veo and Runway APIs, its account) and imgbb:
tests, benchmarks and `make run` use it. A separate server: may import core/ only."""
