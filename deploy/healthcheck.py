"""Container health check: exit 0 when the process in this container answers GET /healthz.

Used by the image's HEALTHCHECK and by deploy/compose.yaml. Standard library only (the slim
image has no curl). The port is STOCKMANAGER_PORT when set, otherwise the default port of the
process that PID 1 serves (`stockmanager serve <name>`), otherwise the gateway's.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Mapping, Sequence

DEFAULT_PORTS = {
    "gateway": 5000,
    "products": 5101,
    "sales": 5102,
    "users": 5103,
    "metrics": 5104,
    "notifications": 5105,
    "audit": 5106,
    "webhooks": 5107,
}
TIMEOUT_SECONDS = 3.0


def served_process(cmdline: Sequence[str]) -> str:
    """The process name after `serve` in a command line; the image default otherwise."""
    for index, arg in enumerate(cmdline[:-1]):
        if arg == "serve":
            return cmdline[index + 1]
    return "gateway"


def health_port(environ: Mapping[str, str], cmdline: Sequence[str]) -> int:
    override = environ.get("STOCKMANAGER_PORT", "").strip()
    if override:
        return int(override)
    return DEFAULT_PORTS.get(served_process(cmdline), DEFAULT_PORTS["gateway"])


def pid1_cmdline() -> list[str]:
    try:
        with open("/proc/1/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def check(port: int, host: str = "127.0.0.1") -> bool:
    # No proxies: HTTP_PROXY set for outbound calls must not capture a loopback probe.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{host}:{port}/healthz", timeout=TIMEOUT_SECONDS) as response:
            return bool(response.status == 200)
    except OSError as exc:  # URLError and HTTPError (e.g. 503) are OSErrors
        print(f"healthcheck: http://{host}:{port}/healthz failed: {exc}", file=sys.stderr)
        return False


def main() -> int:
    return 0 if check(health_port(os.environ, pid1_cmdline())) else 1


if __name__ == "__main__":
    sys.exit(main())
