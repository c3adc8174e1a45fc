"""The local stack: the sandbox runner, PostgreSQL/Redis/S3 starters, the whole soraq as child
processes, and a webhook receiver — development and test tooling, never imported by runtime
code."""
