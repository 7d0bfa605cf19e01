"""A tiny radguard server run as a subprocess by the SIGTERM drain test.

Protocol on standard output, one line each: ``PORT <n>`` once serving, ``HOOK-RAN`` when the
shutdown hook runs. Logs go to standard error.
"""

from __future__ import annotations

import asyncio
import sys

from services.runtime.config import ServiceSettings, load_settings
from services.runtime.server import RadguardServer, serve
from services.runtime.telemetry import configure_logging
from tests.contract.runtime import echo_service


async def main() -> None:
    configure_logging(level="info", fmt="logfmt", service_name="drain-test", stream=sys.stderr)
    settings = load_settings(
        ServiceSettings,
        {
            "RADGUARD_SERVICE_NAME": "drain-test",
            "RADGUARD_GRPC_HOST": "127.0.0.1",
            "RADGUARD_GRPC_PORT": "0",
            "RADGUARD_METRICS_ENABLED": "false",
            "RADGUARD_DRAIN_GRACE_S": "10",
            "RADGUARD_READINESS_INTERVAL_S": "3600",
        },
    )
    server = RadguardServer(settings)
    server.add_generic_handler(echo_service.handler())

    async def hook() -> None:
        print("HOOK-RAN", flush=True)

    server.add_shutdown_hook(hook)

    async def announce() -> bool:
        # The last readiness check of start-up flips health to SERVING: the port is usable.
        print(f"PORT {server.port}", flush=True)
        return True

    server.add_readiness_check("announce-port", announce)
    await serve(server)


if __name__ == "__main__":
    asyncio.run(main())
