"""The bottom layer: settings, logging, metrics and small helpers (the SSRF guard, image
sniffing, error types, secrets). Imports nothing of soraq's own."""
