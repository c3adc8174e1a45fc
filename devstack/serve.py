"""A throwaway soraq on the embedded default against the sandbox, for test runners in other
languages (clients/typescript): prints one JSON line — url, api_key, webhook_secret — and
runs until its stdin closes.

    python -m devstack.serve
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from devstack.stack import local_stack


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="soraq-serve-") as folder,
        local_stack(
            Path(folder),
            # Webhook receivers in client tests are plain http on this machine.
            WEBHOOK_ALLOW_HTTP="true",
            WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32",
        ) as stack,
    ):
        key, secret = stack.create_client("client-tests")
        print(json.dumps({"url": stack.api_url, "api_key": key, "webhook_secret": secret}))
        sys.stdout.flush()
        sys.stdin.read()  # the parent closes it (or exits) when it is done


if __name__ == "__main__":
    main()
