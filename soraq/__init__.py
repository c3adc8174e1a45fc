"""The `soraq` command: migrate, api, worker, beat, sandbox, dev, clients, submit, jobs. The top
layer: may import anything below it."""
