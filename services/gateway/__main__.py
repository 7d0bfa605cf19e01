"""Run the gateway: ``python -m services.gateway`` (settings from ``RADGUARD_*`` variables)."""

from __future__ import annotations

import asyncio
import sys

from services.gateway.app import build_gateway
from services.gateway.settings import GatewaySettings
from services.runtime.auth import CredentialsFileError
from services.runtime.config import ConfigError, load_settings
from services.runtime.server import serve
from services.runtime.telemetry import setup_telemetry


async def _main() -> None:
    settings = load_settings(GatewaySettings)
    setup_telemetry(settings)
    gateway = build_gateway(settings)
    gateway.sink.start()
    await gateway.follower.start()
    await serve(gateway.server)


def main() -> None:
    """Entry point; configuration problems print one line per variable and exit 2."""
    try:
        asyncio.run(_main())
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        sys.exit(2)
    except CredentialsFileError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
