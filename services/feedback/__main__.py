"""Run the feedback service: ``python -m services.feedback`` (settings from ``RADGUARD_*`` variables)."""

from __future__ import annotations

import asyncio
import sys

from services.feedback.app import build_feedback
from services.feedback.settings import FeedbackSettings
from services.runtime.auth import CredentialsFileError
from services.runtime.config import ConfigError, load_settings
from services.runtime.errors import Unavailable
from services.runtime.server import serve
from services.runtime.telemetry import setup_telemetry


async def _main() -> None:
    settings = load_settings(FeedbackSettings)
    setup_telemetry(settings)
    feedback = await build_feedback(settings)
    feedback.relay.start()
    await serve(feedback.server)


def main() -> None:
    """Entry point; configuration problems print one line per variable and exit 2."""
    try:
        asyncio.run(_main())
    except ConfigError as exc:
        print(f"feedback: {exc}", file=sys.stderr)
        sys.exit(2)
    except CredentialsFileError as exc:
        print(f"feedback: {exc}", file=sys.stderr)
        sys.exit(2)
    except Unavailable as exc:
        print(f"feedback: {exc.message}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
