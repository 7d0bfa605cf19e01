"""Run the governance service: ``python -m services.governance_api`` (settings from ``RADGUARD_*`` variables)."""

from __future__ import annotations

import asyncio
import sys

from services.governance_api.app import build_governance
from services.governance_api.settings import GovernanceSettings
from services.runtime.config import ConfigError, load_settings
from services.runtime.errors import Unavailable
from services.runtime.server import serve
from services.runtime.telemetry import setup_telemetry


async def _main() -> None:
    settings = load_settings(GovernanceSettings)
    setup_telemetry(settings)
    governance = await build_governance(settings)
    governance.relay.start()
    if governance.checkpoints is not None:
        governance.checkpoints.start()
    if governance.controller is not None:
        governance.controller.start()
    if governance.findings_feed is not None:
        governance.findings_feed.start()
    await serve(governance.server)


def main() -> None:
    """Entry point; configuration problems print one line per variable and exit 2."""
    try:
        asyncio.run(_main())
    except ConfigError as exc:
        print(f"governance: {exc}", file=sys.stderr)
        sys.exit(2)
    except Unavailable as exc:
        print(f"governance: {exc.message}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
