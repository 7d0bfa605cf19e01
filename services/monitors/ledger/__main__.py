"""Run the ledger writer: ``python -m services.monitors.ledger`` (settings from ``RADGUARD_*`` variables)."""

from __future__ import annotations

import asyncio
import sys

from services.monitors.ledger.app import build_ledger_writer
from services.monitors.ledger.settings import LedgerSettings
from services.runtime.config import ConfigError, load_settings
from services.runtime.errors import Unavailable
from services.runtime.server import serve
from services.runtime.telemetry import setup_telemetry


async def _main() -> None:
    settings = load_settings(LedgerSettings)
    setup_telemetry(settings)
    process = await build_ledger_writer(settings)
    process.start()
    await serve(process.server)
    if process.failure is not None:
        sys.exit(1)


def main() -> None:
    """Entry point; configuration problems print one line per variable and exit 2."""
    try:
        asyncio.run(_main())
    except ConfigError as exc:
        print(f"ledger-writer: {exc}", file=sys.stderr)
        sys.exit(2)
    except Unavailable as exc:
        print(f"ledger-writer: {exc.message}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
